//! Images grouped by class, and the fingerprint that ties a saved sampler state to its labels.

use std::collections::BTreeMap;

/// The images of each class, classes in ascending label order, images in dataset order.
#[derive(Debug, Clone)]
pub(crate) struct Classes {
    /// The distinct labels, ascending.
    pub(crate) labels: Vec<i64>,
    /// `members[c]`: indices of the images with label `labels[c]`, ascending.
    pub(crate) members: Vec<Vec<usize>>,
}

impl Classes {
    /// Groups image indices `0..labels.len()` by label.
    pub(crate) fn group(labels: &[i64]) -> Self {
        let mut map: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for (i, &l) in labels.iter().enumerate() {
            map.entry(l).or_default().push(i);
        }
        let (labels, members) = map.into_iter().unzip();
        Self { labels, members }
    }

    /// Number of classes.
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }
}

/// FNV-1a (64-bit) over the little-endian bytes of every label list, as 16 hex digits.
///
/// Stable across platforms and Rust versions (unlike `DefaultHasher`), so a state saved by one
/// build restores under another.
pub(crate) fn labels_hash(lists: &[&[i64]]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for list in lists {
        for byte in (list.len() as u64)
            .to_le_bytes()
            .into_iter()
            .chain(list.iter().flat_map(|v| v.to_le_bytes()))
        {
            h ^= u64::from(byte);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_sorted_label() {
        let c = Classes::group(&[5, -1, 5, 3, -1]);
        assert_eq!(c.labels, vec![-1, 3, 5]);
        assert_eq!(c.members, vec![vec![1, 4], vec![3], vec![0, 2]]);
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn hash_depends_on_values_order_and_split() {
        // FNV-1a of no bytes is the offset basis.
        assert_eq!(labels_hash(&[]), "cbf29ce484222325");
        let a = labels_hash(&[&[1, 2, 3]]);
        assert_eq!(a, labels_hash(&[&[1, 2, 3]]));
        assert_ne!(a, labels_hash(&[&[1, 3, 2]]));
        assert_ne!(labels_hash(&[&[1, 2], &[3]]), labels_hash(&[&[1], &[2, 3]]));
    }
}
