//! Agreement between a clustering and the true labels: NMI and AMI, defined exactly as
//! scikit-learn's `normalized_mutual_info_score` and `adjusted_mutual_info_score` (arithmetic
//! mean normaliser, sklearn 1.x), which PML's `AccuracyCalculator` calls.
//!
//! Both take two labelings as dense ids (`0..n_classes`). AMI corrects MI for chance with the
//! expected mutual information under the hypergeometric model (Vinh et al., JMLR 2010); the sum
//! is grouped by distinct (class size, cluster size) pairs, so it is cheap even with 10k classes.

use std::collections::HashMap;

/// Sizes of each id's group (ids dense in `0..`).
fn sizes(ids: &[u32]) -> Vec<u64> {
    let n = ids.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
    let mut c = vec![0u64; n];
    for &i in ids {
        c[i as usize] += 1;
    }
    c.retain(|&x| x > 0);
    c
}

/// Shannon entropy (nats) of a labeling given its group sizes, as sklearn's `_entropy`.
fn entropy(sizes: &[u64]) -> f64 {
    if sizes.len() <= 1 {
        return 0.0;
    }
    let total = sizes.iter().sum::<u64>() as f64;
    -sizes
        .iter()
        .map(|&p| (p as f64 / total) * ((p as f64).ln() - total.ln()))
        .sum::<f64>()
}

/// Mutual information (nats) of two labelings, as sklearn's `mutual_info_score`.
fn mutual_info(a: &[u32], b: &[u32], sa: &[u64], sb: &[u64]) -> f64 {
    if sa.len() == 1 || sb.len() == 1 {
        return 0.0;
    }
    let mut cells: HashMap<(u32, u32), u64> = HashMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *cells.entry((x, y)).or_default() += 1;
    }
    let (ca, cb) = (group_sizes_by_id(a), group_sizes_by_id(b));
    let n = a.len() as f64;
    let mut mi = 0.0;
    for (&(x, y), &nij) in &cells {
        let p = nij as f64 / n;
        let outer = (ca[x as usize] * cb[y as usize]) as f64;
        let term = p * ((nij as f64).ln() - n.ln()) + p * (-outer.ln() + n.ln() + n.ln());
        if term.abs() >= f64::EPSILON {
            mi += term;
        }
    }
    mi.max(0.0)
}

fn group_sizes_by_id(ids: &[u32]) -> Vec<u64> {
    let n = ids.iter().map(|&i| i as usize + 1).max().unwrap_or(0);
    let mut c = vec![0u64; n];
    for &i in ids {
        c[i as usize] += 1;
    }
    c
}

/// `ln(i!)` for `i ≤ n`, by compensated summation.
fn log_factorials(n: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(n + 1);
    let (mut sum, mut comp) = (0.0f64, 0.0f64);
    out.push(0.0);
    for i in 1..=n {
        let y = (i as f64).ln() - comp;
        let t = sum + y;
        comp = (t - sum) - y;
        sum = t;
        out.push(sum);
    }
    out
}

/// Expected mutual information of two labelings with these group sizes (sklearn's
/// `expected_mutual_information`).
fn expected_mutual_info(sa: &[u64], sb: &[u64], n: u64) -> f64 {
    if sa.len() == 1 || sb.len() == 1 {
        return 0.0;
    }
    let count = |s: &[u64]| {
        let mut m: HashMap<u64, u64> = HashMap::new();
        for &x in s {
            *m.entry(x).or_default() += 1;
        }
        m
    };
    let (ma, mb) = (count(sa), count(sb));
    let lf = log_factorials(n as usize);
    let nf = n as f64;
    let mut emi = 0.0;
    for (&a, &mult_a) in &ma {
        for (&b, &mult_b) in &mb {
            let (start, end) = ((a + b).saturating_sub(n).max(1), a.min(b));
            let fixed = lf[a as usize] + lf[b as usize] + lf[(n - a) as usize] + lf[(n - b) as usize] - lf[n as usize];
            let mut sum = 0.0;
            for nij in start..=end {
                let term1 = nij as f64 / nf;
                let term2 = (nf.ln() + (nij as f64).ln()) - (a as f64).ln() - (b as f64).ln();
                let gln = fixed
                    - lf[nij as usize]
                    - lf[(a - nij) as usize]
                    - lf[(b - nij) as usize]
                    - lf[(n + nij - a - b) as usize];
                sum += term1 * term2 * gln.exp();
            }
            emi += (mult_a * mult_b) as f64 * sum;
        }
    }
    emi
}

/// Normalised mutual information, arithmetic normaliser (sklearn's default).
pub fn nmi(truth: &[u32], pred: &[u32]) -> f64 {
    assert_eq!(truth.len(), pred.len(), "nmi: labelings of different lengths");
    let (sa, sb) = (sizes(truth), sizes(pred));
    if sa.len() == sb.len() && sa.len() <= 1 {
        return 1.0;
    }
    let mi = mutual_info(truth, pred, &sa, &sb);
    if mi == 0.0 {
        return 0.0;
    }
    mi / ((entropy(&sa) + entropy(&sb)) / 2.0)
}

/// Adjusted mutual information, arithmetic normaliser (sklearn's default).
pub fn ami(truth: &[u32], pred: &[u32]) -> f64 {
    assert_eq!(truth.len(), pred.len(), "ami: labelings of different lengths");
    let (sa, sb) = (sizes(truth), sizes(pred));
    if sa.len() == sb.len() && sa.len() <= 1 {
        return 1.0;
    }
    if sa.len() == 1 || sb.len() == 1 {
        return 0.0;
    }
    let mi = mutual_info(truth, pred, &sa, &sb);
    let emi = expected_mutual_info(&sa, &sb, truth.len() as u64);
    let normaliser = (entropy(&sa) + entropy(&sb)) / 2.0;
    let keep_sign = |x: f64| {
        if x < 0.0 {
            x.min(-f64::EPSILON)
        } else {
            x.max(f64::EPSILON)
        }
    };
    keep_sign(mi - emi) / keep_sign(normaliser - emi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_and_relabelled_clusterings_score_one() {
        let a = [0, 0, 1, 1, 2, 2, 2];
        let b = [2, 2, 0, 0, 1, 1, 1];
        assert!((nmi(&a, &b) - 1.0).abs() < 1e-12);
        assert!((ami(&a, &b) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn hand_computed_two_by_two() {
        // Contingency [[2, 0], [1, 1]], n = 4. H(a) = ln 2, H(b) = -(3/4 ln 3/4 + 1/4 ln 1/4),
        // MI = 2/4 ln(2·4/(2·3)) + 1/4 ln(1·4/(2·3)) + 1/4 ln(1·4/(2·1)).
        let a = [0, 0, 1, 1];
        let b = [0, 0, 0, 1];
        let ha = 2f64.ln();
        let hb = -(0.75 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        let mi = 0.5 * (8.0f64 / 6.0).ln() + 0.25 * (4.0f64 / 6.0).ln() + 0.25 * 2f64.ln();
        assert!((nmi(&a, &b) - mi / ((ha + hb) / 2.0)).abs() < 1e-12);
        // EMI by enumerating all 4!/(2!2!) = 6 equally likely placements of b's single "1":
        // the cluster-1 point lands in class 0 or class 1 with probability 1/2 each, and both
        // cases give the same MI by symmetry, so EMI = MI and AMI = 0 (up to sklearn's eps guard).
        assert!(ami(&a, &b).abs() < 1e-9);
    }

    #[test]
    fn single_cluster_cases() {
        assert_eq!(nmi(&[0, 0, 0], &[0, 0, 0]), 1.0);
        assert_eq!(ami(&[0, 0, 0], &[0, 1, 2]), 0.0);
        assert_eq!(nmi(&[0, 1, 2], &[0, 0, 0]), 0.0);
    }
}
