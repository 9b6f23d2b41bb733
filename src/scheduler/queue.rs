//! The scheduler's waiting line: first in, first out, with removal by call id and the expired
//! calls found by age, each in O(log n), so that no event costs a scan of every waiting call.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::call::Timestamp;

/// A call waiting for a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub id: String,
    /// When it was accepted (its age in the queue counts from here, across restarts).
    pub created_at: Timestamp,
    /// An attempt of a notification (started only once the notifier has taken in every call end).
    pub notification: bool,
}

/// Where a removed call stood, to put it back in the same place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place(i64);

#[derive(Debug, Default)]
pub struct Queue {
    /// Position -> call; the smallest position is the front.
    line: BTreeMap<i64, Waiting>,
    /// Call id -> position.
    place: HashMap<String, i64>,
    /// (accepted at, position): the oldest first.
    by_age: BTreeSet<(Timestamp, i64)>,
    next_back: i64,
}

impl Queue {
    pub fn len(&self) -> usize {
        self.line.len()
    }

    /// Join at the back. A call already waiting keeps its place.
    pub fn push_back(&mut self, w: Waiting) {
        let at = self.next_back;
        self.next_back += 1;
        self.put(at, w);
    }

    /// Put a removed call back where it stood.
    pub fn restore(&mut self, place: Place, w: Waiting) {
        self.put(place.0, w);
    }

    fn put(&mut self, at: i64, w: Waiting) {
        if self.place.contains_key(&w.id) || self.line.contains_key(&at) {
            return;
        }
        self.place.insert(w.id.clone(), at);
        self.by_age.insert((w.created_at, at));
        self.line.insert(at, w);
    }

    /// The call at the front, if any, without taking it.
    pub fn front(&self) -> Option<&Waiting> {
        self.line.first_key_value().map(|(_, w)| w)
    }

    pub fn pop_front(&mut self) -> Option<Waiting> {
        let (&at, _) = self.line.first_key_value()?;
        self.take(at).map(|(_, w)| w)
    }

    /// Take `id` out of the line, with where it stood.
    pub fn remove(&mut self, id: &str) -> Option<(Place, Waiting)> {
        let at = *self.place.get(id)?;
        self.take(at)
    }

    fn take(&mut self, at: i64) -> Option<(Place, Waiting)> {
        let w = self.line.remove(&at)?;
        self.place.remove(&w.id);
        self.by_age.remove(&(w.created_at, at));
        Some((Place(at), w))
    }

    /// Take out every call accepted at or before `cutoff`, oldest first.
    pub fn take_accepted_by(&mut self, cutoff: Timestamp) -> Vec<Waiting> {
        let mut out = Vec::new();
        while let Some(&(created, at)) = self.by_age.first() {
            if created > cutoff {
                break;
            }
            match self.take(at) {
                Some((_, w)) => out.push(w),
                None => {
                    self.by_age.remove(&(created, at));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(id: &str, at: u64) -> Waiting {
        Waiting {
            id: id.to_string(),
            created_at: Timestamp(at),
            notification: false,
        }
    }

    fn ids(q: &mut Queue) -> Vec<String> {
        std::iter::from_fn(|| q.pop_front()).map(|w| w.id).collect()
    }

    #[test]
    fn calls_leave_in_the_order_they_came() {
        let mut q = Queue::default();
        q.push_back(w("a", 1));
        q.push_back(w("b", 2));
        q.push_back(w("c", 3));
        assert_eq!(q.front().map(|w| w.id.as_str()), Some("a"));
        assert_eq!(ids(&mut q), ["a", "b", "c"]);
        assert_eq!(q.len(), 0);
    }

    #[test]
    fn a_removed_call_can_be_put_back_in_its_place() {
        let mut q = Queue::default();
        for (i, id) in ["a", "b", "c"].into_iter().enumerate() {
            q.push_back(w(id, i as u64));
        }
        let (place, b) = q.remove("b").expect("b waits");
        assert!(q.remove("b").is_none());
        q.push_back(w("d", 9));
        q.restore(place, b);
        assert_eq!(ids(&mut q), ["a", "b", "c", "d"]);
    }

    #[test]
    fn the_expired_calls_are_found_by_age_not_by_position() {
        let mut q = Queue::default();
        q.push_back(w("new", 50));
        q.push_back(w("old", 10));
        q.push_back(w("mid", 30));
        q.push_back(w("edge", 20));
        let gone: Vec<String> = q
            .take_accepted_by(Timestamp(20))
            .into_iter()
            .map(|w| w.id)
            .collect();
        assert_eq!(gone, ["old", "edge"]);
        assert_eq!(q.len(), 2);
        assert_eq!(ids(&mut q), ["new", "mid"]);
    }

    #[test]
    fn a_call_id_waits_once() {
        let mut q = Queue::default();
        q.push_back(w("a", 1));
        q.push_back(w("a", 2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.front().map(|w| w.created_at), Some(Timestamp(1)));
    }
}
