//! Intervals of versions over any total order: what a specifier admits and what an advisory
//! affects, so the audit can ask whether the two meet.

use std::cmp::Ordering;
use std::fmt;
use std::ops::Bound;

/// A possibly empty interval `lo .. hi` of an ordered type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interval<V> {
    pub lo: Bound<V>,
    pub hi: Bound<V>,
}

impl<V: Ord + Clone> Interval<V> {
    pub fn new(lo: Bound<V>, hi: Bound<V>) -> Self {
        Self { lo, hi }
    }

    pub fn all() -> Self {
        Self::new(Bound::Unbounded, Bound::Unbounded)
    }

    pub fn point(v: V) -> Self {
        Self::new(Bound::Included(v.clone()), Bound::Included(v))
    }

    pub fn contains(&self, v: &V) -> bool {
        let above = match &self.lo {
            Bound::Unbounded => true,
            Bound::Included(l) => v >= l,
            Bound::Excluded(l) => v > l,
        };
        let below = match &self.hi {
            Bound::Unbounded => true,
            Bound::Included(h) => v <= h,
            Bound::Excluded(h) => v < h,
        };
        above && below
    }

    /// Whether no value lies in the interval. The orders we use are dense enough (between two
    /// distinct versions there is always a third, e.g. a dev or pre release) that only equal
    /// bounds can make a non-inverted interval empty.
    pub fn is_empty(&self) -> bool {
        match (&self.lo, &self.hi) {
            (Bound::Unbounded, _) | (_, Bound::Unbounded) => false,
            (Bound::Included(l), Bound::Included(h)) => l > h,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(h))
            | (Bound::Excluded(l), Bound::Included(h)) => l >= h,
        }
    }

    pub fn intersect(&self, other: &Self) -> Self {
        let lo = max_lo(&self.lo, &other.lo);
        let hi = min_hi(&self.hi, &other.hi);
        Self::new(lo, hi)
    }

    pub fn meets(&self, other: &Self) -> bool {
        !self.intersect(other).is_empty()
    }
}

fn max_lo<V: Ord + Clone>(a: &Bound<V>, b: &Bound<V>) -> Bound<V> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x.clone(),
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            match x.cmp(y) {
                Ordering::Greater => a.clone(),
                Ordering::Less => b.clone(),
                // Equal values: the exclusive bound is the stricter.
                Ordering::Equal if matches!(a, Bound::Excluded(_)) => a.clone(),
                Ordering::Equal => b.clone(),
            }
        }
    }
}

fn min_hi<V: Ord + Clone>(a: &Bound<V>, b: &Bound<V>) -> Bound<V> {
    match (a, b) {
        (Bound::Unbounded, x) | (x, Bound::Unbounded) => x.clone(),
        (Bound::Included(x) | Bound::Excluded(x), Bound::Included(y) | Bound::Excluded(y)) => {
            match x.cmp(y) {
                Ordering::Less => a.clone(),
                Ordering::Greater => b.clone(),
                Ordering::Equal if matches!(a, Bound::Excluded(_)) => a.clone(),
                Ordering::Equal => b.clone(),
            }
        }
    }
}

impl<V: fmt::Display> fmt::Display for Interval<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.lo, &self.hi) {
            (Bound::Included(l), Bound::Included(h)) if l.to_string() == h.to_string() => {
                write!(f, "={l}")
            }
            _ => {
                let mut parts = Vec::new();
                match &self.lo {
                    Bound::Included(l) => parts.push(format!(">={l}")),
                    Bound::Excluded(l) => parts.push(format!(">{l}")),
                    Bound::Unbounded => {}
                }
                match &self.hi {
                    Bound::Included(h) => parts.push(format!("<={h}")),
                    Bound::Excluded(h) => parts.push(format!("<{h}")),
                    Bound::Unbounded => {}
                }
                if parts.is_empty() {
                    f.write_str("*")
                } else {
                    f.write_str(&parts.join(", "))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn touching_bounds_meet_only_when_both_include() {
        let a = Interval::new(Bound::Included(1), Bound::Included(5));
        let b = Interval::new(Bound::Included(5), Bound::Unbounded);
        let c = Interval::new(Bound::Excluded(5), Bound::Unbounded);
        let d = Interval::new(Bound::Included(1), Bound::Excluded(5));
        assert!(a.meets(&b));
        assert!(!a.meets(&c));
        assert!(!d.meets(&b));
        assert!(Interval::<i32>::all().meets(&a));
        assert!(Interval::new(Bound::Included(3), Bound::Excluded(3)).is_empty());
    }
}
