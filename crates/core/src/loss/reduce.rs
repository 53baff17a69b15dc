//! PML's reducers, as a value and the weight each element's loss gets in the gradient.
//!
//! - `AvgNonZeroReducer` (contrastive, triplet): the mean of the element losses that are `> 0`; 0,
//!   with no gradient, when none is. [`NonZeroMean`] accumulates it.
//! - `MeanReducer` (multi-similarity, normalized-softmax): the mean over all elements, zeros
//!   included: weight `1/count`.
//! - `DivisorReducer` (Proxy-Anchor): the sum divided by a given divisor, 0 when it is 0: see
//!   [`divide`].

/// Sum and count of the positive element losses (PML's `AvgNonZeroReducer`, `low = 0`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct NonZeroMean {
    /// Sum of the losses `> 0`.
    pub sum: f64,
    /// How many there were.
    pub count: usize,
}

impl NonZeroMean {
    /// Adds `count` positive losses summing to `sum`.
    pub fn add(&mut self, sum: f64, count: usize) {
        self.sum += sum;
        self.count += count;
    }

    /// Adds one element loss; returns whether it counts (is `> 0`).
    pub fn push(&mut self, loss: f64) -> bool {
        let counts = loss > 0.0;
        if counts {
            self.add(loss, 1);
        }
        counts
    }

    /// Both accumulations together (for rayon's `reduce`).
    pub fn merge(self, other: Self) -> Self {
        Self {
            sum: self.sum + other.sum,
            count: self.count + other.count,
        }
    }

    /// The reduced loss.
    pub fn value(&self) -> f64 {
        divide(self.sum, self.count as f64)
    }

    /// `d value / d loss_k` for an element that counts: `1/count` (0 when none counts).
    pub fn weight(&self) -> f64 {
        divide(1.0, self.count as f64)
    }
}

/// `sum / divisor`, or 0 for a zero divisor (PML's `DivisorReducer` and its zero-loss path).
pub(crate) fn divide(sum: f64, divisor: f64) -> f64 {
    if divisor == 0.0 {
        0.0
    } else {
        sum / divisor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_positive_losses_count() {
        let mut r = NonZeroMean::default();
        assert_eq!((r.value(), r.weight()), (0.0, 0.0));
        for l in [0.0, 3.0, -1.0, 1.0] {
            r.push(l);
        }
        assert_eq!((r.value(), r.weight(), r.count), (2.0, 0.5, 2));
        let both = r.merge(NonZeroMean { sum: 2.0, count: 1 });
        assert_eq!((both.sum, both.count), (6.0, 3));
    }
}
