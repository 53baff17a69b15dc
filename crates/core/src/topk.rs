//! Bounded per-row top-k selection, the inner loop of the streaming kNN.
//!
//! **Tie rule.** Neighbours are ranked by descending score; equal scores are ranked by ascending
//! reference index. This is a total order on `(score, index)`, so the top k of a row is unique and
//! does not depend on block sizes, thread count or the order blocks are processed in.
//!
//! A candidate is packed into one `u64` rank key, `!ordered(score) << 32 | index`, whose integer
//! order is exactly the tie rule, so selection and sorting are plain integer operations. Each row
//! keeps a buffer of `cap = k + slack` keys and the k-th best key kept at the last compaction (its
//! "worst"). A new candidate is taken only if it ranks before that worst; when the buffer is full
//! it is compacted to the k best with `select_nth_unstable`. Scores are first compared 16 at a time
//! against the worst scores (one vector compare giving a bit mask), and only the set bits are
//! looked at.

use std::cmp::Ordering;

/// One neighbour of a query: a reference index and its score (inner product).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Hit {
    /// Inner product of the query and the reference row (cosine on L2-normalised rows).
    pub score: f32,
    /// Row of the reference set.
    pub index: u32,
}

impl Hit {
    /// The filler for rows with fewer than k candidates (only NaN scores can cause that).
    pub fn missing() -> Hit {
        Hit {
            score: f32::NAN,
            index: u32::MAX,
        }
    }

    /// Whether `self` ranks strictly before `other`: higher score first, then lower index.
    #[inline(always)]
    pub fn beats(&self, other: &Hit) -> bool {
        self.score > other.score || (self.score == other.score && self.index < other.index)
    }

    /// The tie rule as an ordering (`Less` = ranks first), for sorting finite scores.
    #[inline]
    pub fn rank_cmp(&self, other: &Hit) -> Ordering {
        if self.beats(other) {
            Ordering::Less
        } else if other.beats(self) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    }

    /// The rank key: for non-NaN scores, `a.key() < b.key()` exactly when `a.beats(&b)`.
    #[inline(always)]
    pub(crate) fn key(self) -> u64 {
        // `+ 0.0` turns -0.0 into +0.0, which `beats` treats as equal.
        let bits = (self.score + 0.0).to_bits();
        let ascending = if bits >> 31 == 1 { !bits } else { bits | 0x8000_0000 };
        (u64::from(!ascending) << 32) | u64::from(self.index)
    }

    /// Inverse of [`Hit::key`].
    #[inline(always)]
    pub(crate) fn from_key(key: u64) -> Hit {
        let ascending = !((key >> 32) as u32);
        let bits = if ascending >> 31 == 1 {
            ascending & 0x7fff_ffff
        } else {
            !ascending
        };
        Hit {
            score: f32::from_bits(bits),
            index: key as u32,
        }
    }
}

/// The key a row holds before it has k candidates: every non-NaN hit ranks before it.
const NO_WORST: u64 = u64::MAX;

/// How many candidates beyond k a row buffers before compacting: more slack means fewer
/// compactions but more memory (`rows × (k + slack) × 8` bytes).
pub(crate) fn slack(k: usize, wide: bool) -> usize {
    if wide {
        k.max(16)
    } else {
        (k / 2).max(16)
    }
}

const LANES: usize = 16;

/// The top-k states of a group of consecutive rows, over a borrowed `rows × cap` key buffer.
///
/// Invariant: a row's buffer never holds a NaN score (NaN is never accepted).
pub(crate) struct TopKRows<'a> {
    k: usize,
    cap: usize,
    buf: &'a mut [u64],
    len: Vec<usize>,
    worst: Vec<u64>,
    worst_score: Vec<f32>,
}

impl<'a> TopKRows<'a> {
    /// Empty states for `buf.len() / cap` rows; `1 ≤ k < cap`.
    pub(crate) fn new(k: usize, cap: usize, buf: &'a mut [u64]) -> Self {
        debug_assert!(k >= 1 && k < cap && buf.len() % cap == 0);
        let rows = buf.len() / cap;
        TopKRows {
            k,
            cap,
            buf,
            len: vec![0; rows],
            worst: vec![NO_WORST; rows],
            worst_score: vec![f32::NEG_INFINITY; rows],
        }
    }

    /// Offers `hit` to row `r`: kept if it ranks before the row's worst (NaN never is).
    #[inline(always)]
    fn offer(&mut self, r: usize, hit: Hit) {
        let key = hit.key();
        if key >= self.worst[r] || hit.score.is_nan() {
            return;
        }
        let row = &mut self.buf[r * self.cap..(r + 1) * self.cap];
        row[self.len[r]] = key;
        self.len[r] += 1;
        if self.len[r] == self.cap {
            let worst = compact(row, self.k);
            self.len[r] = self.k;
            self.worst[r] = worst;
            self.worst_score[r] = Hit::from_key(worst).score;
        }
    }

    /// Offers row `r` the candidates `scores[j]` with reference index `base + j`, except `skip`.
    pub(crate) fn offer_row(&mut self, r: usize, scores: &[f32], base: usize, skip: Option<usize>) {
        for (c, chunk) in scores.chunks(LANES).enumerate() {
            let mut m = mask(chunk, |_| self.worst_score[r]);
            while m != 0 {
                let o = m.trailing_zeros() as usize;
                m &= m - 1;
                let j = c * LANES + o;
                if skip != Some(j) {
                    self.offer(
                        r,
                        Hit {
                            score: chunk[o],
                            index: (base + j) as u32,
                        },
                    );
                }
            }
        }
    }

    /// The transposed offer: `block` is `block.len() / rows × rows` row-major, and its entry
    /// `(s, r)` is offered to row `r` with reference index `base + s`.
    pub(crate) fn offer_columns(&mut self, block: &[f32], base: usize) {
        let rows = self.len.len();
        for (s, line) in block.chunks_exact(rows).enumerate() {
            let index = (base + s) as u32;
            for (c, chunk) in line.chunks(LANES).enumerate() {
                let worst = &self.worst_score[c * LANES..c * LANES + chunk.len()];
                let mut m = mask(chunk, |o| worst[o]);
                while m != 0 {
                    let o = m.trailing_zeros() as usize;
                    m &= m - 1;
                    self.offer(c * LANES + o, Hit { score: chunk[o], index });
                }
            }
        }
    }

    /// Sorts each row's k best keys to the front of its slot, best first. A row offered fewer
    /// than k non-NaN candidates is padded with [`Hit::missing`] keys.
    pub(crate) fn finish(&mut self) {
        for (r, &len) in self.len.iter().enumerate() {
            let row = &mut self.buf[r * self.cap..(r + 1) * self.cap];
            if len > self.k {
                row[..len].select_nth_unstable(self.k - 1);
            }
            row[len.min(self.k)..self.k].fill(Hit::missing().key());
            row[..self.k].sort_unstable();
        }
    }
}

/// Bit `o` is set when `chunk[o] >= worst(o)` (a superset of the candidates that can be kept; NaN
/// never sets it). Full 16-lane chunks compile to one vector compare.
#[inline(always)]
fn mask(chunk: &[f32], worst: impl Fn(usize) -> f32) -> u32 {
    let mut m = 0u32;
    if let Ok(c) = <&[f32; LANES]>::try_from(chunk) {
        for (o, &s) in c.iter().enumerate() {
            m |= u32::from(s >= worst(o)) << o;
        }
    } else {
        for (o, &s) in chunk.iter().enumerate() {
            m |= u32::from(s >= worst(o)) << o;
        }
    }
    m
}

/// Shrinks a full row to its k best keys (unordered) and returns the k-th best.
fn compact(row: &mut [u64], k: usize) -> u64 {
    *row.select_nth_unstable(k - 1).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tie_rule_prefers_higher_score_then_lower_index() {
        let a = Hit { score: 0.5, index: 7 };
        let b = Hit { score: 0.5, index: 3 };
        let c = Hit { score: 0.6, index: 9 };
        assert!(b.beats(&a) && !a.beats(&b));
        assert!(c.beats(&b) && c.beats(&a));
        assert!(!a.beats(&a));
        let mut v = vec![a, b, c];
        v.sort_unstable_by(Hit::rank_cmp);
        assert_eq!(v, vec![c, b, a]);
    }

    #[test]
    fn rank_key_orders_exactly_like_the_tie_rule_and_round_trips() {
        let scores = [
            f32::NEG_INFINITY,
            -1.5,
            -1e-30,
            -0.0,
            0.0,
            1e-30,
            0.25,
            0.5,
            7.0,
            f32::INFINITY,
        ];
        let hits: Vec<Hit> = scores
            .iter()
            .flat_map(|&score| [0u32, 1, 9, u32::MAX - 1].map(|index| Hit { score, index }))
            .collect();
        for a in &hits {
            let back = Hit::from_key(a.key());
            assert_eq!((back.score, back.index), (a.score + 0.0, a.index));
            for b in &hits {
                assert_eq!(a.key() < b.key(), a.beats(b), "{a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn row_and_column_offers_agree_with_sorting_everything() {
        // Scores with many exact ties (multiples of 1/4), so the index tie-break decides often.
        let (rows, n, k) = (5, 300, 7);
        let cap = k + slack(k, false);
        let scores: Vec<f32> = (0..rows * n).map(|i| ((i * 7919 + 13) % 9) as f32 / 4.0).collect();
        let decode = |keys: &[u64]| keys.iter().map(|&x| Hit::from_key(x)).collect::<Vec<_>>();
        let mut by_row = vec![0u64; rows * cap];
        let mut t = TopKRows::new(k, cap, &mut by_row);
        for r in 0..rows {
            // Two pieces, as two reference blocks would deliver them.
            t.offer_row(r, &scores[r * n..r * n + 100], 0, Some(r));
            t.offer_row(r, &scores[r * n + 100..(r + 1) * n], 100, None);
        }
        t.finish();
        // The same scores delivered transposed (n × rows), in one piece.
        let transposed: Vec<f32> = (0..n * rows).map(|i| scores[(i % rows) * n + i / rows]).collect();
        let mut by_col = vec![0u64; rows * cap];
        let mut t = TopKRows::new(k, cap, &mut by_col);
        t.offer_columns(&transposed, 0);
        t.finish();
        for r in 0..rows {
            let mut all: Vec<Hit> = (0..n)
                .filter(|&j| j != r)
                .map(|j| Hit {
                    score: scores[r * n + j],
                    index: j as u32,
                })
                .collect();
            all.sort_by(Hit::rank_cmp);
            assert_eq!(decode(&by_row[r * cap..r * cap + k]), &all[..k], "row offers, row {r}");
            let mut with_self: Vec<Hit> = (0..n)
                .map(|j| Hit {
                    score: scores[r * n + j],
                    index: j as u32,
                })
                .collect();
            with_self.sort_by(Hit::rank_cmp);
            assert_eq!(
                decode(&by_col[r * cap..r * cap + k]),
                &with_self[..k],
                "column offers, row {r}"
            );
        }
    }
}
