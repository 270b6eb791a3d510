//! The shared work queue of [`Routing::SharedQueue`](crate::pool::Routing):
//! idle workers pull from it in FIFO order, or shortest job first by a cost
//! the caller gives (ties in arrival order).
//!
//! Pure: no locking, no actors; the pool wraps it in a mutex.
//!
//! ```
//! use ractor_otp::pool::{QueueOrder, queue::JobQueue};
//!
//! let mut queue = JobQueue::new(QueueOrder::ShortestJobFirst);
//! queue.push("slow", 30);
//! queue.push("fast", 1);
//! queue.push("also fast", 1);
//! assert_eq!(queue.pop(), Some("fast"));
//! assert_eq!(queue.pop(), Some("also fast"), "ties go in arrival order");
//! assert_eq!(queue.pop(), Some("slow"));
//! ```

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, VecDeque};

use crate::pool::QueueOrder;

/// A queue of jobs in FIFO or shortest-job-first order.
#[derive(Debug)]
pub struct JobQueue<T> {
    order: QueueOrder,
    fifo: VecDeque<T>,
    /// Min-heap on (cost, arrival); used only for shortest job first.
    heap: BinaryHeap<Reverse<Entry<T>>>,
    /// Arrival counter; jobs put back at the front get decreasing numbers
    /// below zero so that they come out before everything else of their cost.
    next_arrival: i64,
    next_front: i64,
}

#[derive(Debug)]
struct Entry<T> {
    cost: u64,
    arrival: i64,
    job: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.cost, self.arrival) == (other.cost, other.arrival)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.cost, self.arrival).cmp(&(other.cost, other.arrival))
    }
}

impl<T> JobQueue<T> {
    /// An empty queue.
    #[must_use]
    pub fn new(order: QueueOrder) -> Self {
        Self {
            order,
            fifo: VecDeque::new(),
            heap: BinaryHeap::new(),
            next_arrival: 0,
            next_front: -1,
        }
    }

    /// Adds a job with its cost (ignored in FIFO order).
    pub fn push(&mut self, job: T, cost: u64) {
        match self.order {
            QueueOrder::Fifo => self.fifo.push_back(job),
            QueueOrder::ShortestJobFirst => {
                let arrival = self.next_arrival;
                self.next_arrival += 1;
                self.heap.push(Reverse(Entry { cost, arrival, job }));
            }
        }
    }

    /// Puts a job back to be taken next (FIFO), or first among its cost
    /// (shortest job first): for a job whose worker could not take it.
    pub fn push_front(&mut self, job: T, cost: u64) {
        match self.order {
            QueueOrder::Fifo => self.fifo.push_front(job),
            QueueOrder::ShortestJobFirst => {
                let arrival = self.next_front;
                self.next_front -= 1;
                self.heap.push(Reverse(Entry { cost, arrival, job }));
            }
        }
    }

    /// Takes the next job.
    pub fn pop(&mut self) -> Option<T> {
        self.pop_with_cost().map(|(job, _)| job)
    }

    /// Takes the next job with its cost (0 in FIFO order).
    pub fn pop_with_cost(&mut self) -> Option<(T, u64)> {
        match self.order {
            QueueOrder::Fifo => self.fifo.pop_front().map(|job| (job, 0)),
            QueueOrder::ShortestJobFirst => self.heap.pop().map(|Reverse(e)| (e.job, e.cost)),
        }
    }

    /// Jobs waiting.
    #[must_use]
    pub fn len(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    /// `true` when no job waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes every job, in order.
    pub fn drain_all(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len());
        while let Some(job) = self.pop() {
            out.push(job);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_ignores_cost() {
        let mut q = JobQueue::new(QueueOrder::Fifo);
        for (job, cost) in [(1, 9), (2, 1), (3, 5)] {
            q.push(job, cost);
        }
        q.push_front(0, 100);
        assert_eq!(q.drain_all(), [0, 1, 2, 3]);
    }

    #[test]
    fn shortest_job_first_with_ties_in_arrival_order() {
        let mut q = JobQueue::new(QueueOrder::ShortestJobFirst);
        let jobs = [("a", 5), ("b", 1), ("c", 5), ("d", 0), ("e", 1)];
        for (job, cost) in jobs {
            q.push(job, cost);
        }
        assert_eq!(q.len(), 5);
        assert_eq!(q.drain_all(), ["d", "b", "e", "a", "c"]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_job_put_back_comes_first_among_its_cost() {
        let mut q = JobQueue::new(QueueOrder::ShortestJobFirst);
        q.push("x", 2);
        q.push("y", 2);
        q.push_front("back", 2);
        q.push_front("back2", 2);
        assert_eq!(q.pop_with_cost(), Some(("back2", 2)));
        assert_eq!(q.drain_all(), ["back", "x", "y"]);
    }
}
