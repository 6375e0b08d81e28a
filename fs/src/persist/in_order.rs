//! One piece of work per item on worker threads, its results handed over in
//! item order: persist reads and chunks files ahead on several threads while
//! the packer still gets their chunks in the order of the layer's file list.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Condvar, Mutex, MutexGuard};

/// How far workers may run ahead of the item being handed over.
#[derive(Clone, Copy)]
pub struct Ahead {
    /// Worker threads; 0 or 1: every item is worked on by the caller, in turn.
    pub threads: usize,
    /// Items claimed and not yet handed over, at most.
    pub items: usize,
    /// Sum of the claimed items' costs (see [`run`]), at most; the next item
    /// to hand over is always claimed, whatever its cost.
    pub cost: u64,
}

struct State<R> {
    /// The next item a worker may claim.
    claimed: usize,
    /// Items before this one were handed over.
    handed: usize,
    /// Cost of the items claimed and not yet handed over.
    in_flight: u64,
    /// Results waiting for their turn.
    done: BTreeMap<usize, R>,
    /// Workers waiting for room in the window.
    idle: usize,
    /// The caller is waiting for the result of item `handed`.
    waiting: bool,
    /// The caller stopped: workers claim nothing more.
    stopped: bool,
    /// A worker panicked: its item's result never comes.
    panicked: bool,
}

/// Calls `work` on every item, on `ahead.threads` threads, and `each(index,
/// item, result)` on the caller's thread in item order. Stops at the first
/// error of `each`, which workers then see and stop too. `cost` weighs an
/// item for [`Ahead::cost`] (e.g. the bytes its result holds).
pub fn run<T: Sync, R: Send, E>(
    items: &[T],
    ahead: Ahead,
    cost: impl Fn(&T) -> u64 + Sync,
    work: impl Fn(&T) -> R + Sync,
    mut each: impl FnMut(usize, &T, R) -> Result<(), E>,
) -> Result<(), E> {
    if ahead.threads <= 1 {
        for (i, item) in items.iter().enumerate() {
            each(i, item, work(item))?;
        }
        return Ok(());
    }
    let state = Mutex::new(State {
        claimed: 0,
        handed: 0,
        in_flight: 0,
        done: BTreeMap::new(),
        idle: 0,
        waiting: false,
        stopped: false,
        panicked: false,
    });
    // Workers wait for `room`, the caller for `ready`. Idle workers are woken
    // once the window has drained to half, not at each item handed over: a
    // wake-up per small file costs more than reading it.
    let (room, ready) = (Condvar::new(), Condvar::new());
    let lock = || state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    std::thread::scope(|scope| {
        for _ in 0..ahead.threads {
            scope.spawn(|| loop {
                let mut s = lock();
                let index = loop {
                    if s.stopped || s.claimed == items.len() {
                        return;
                    }
                    let next = s.claimed;
                    let room_left =
                        next - s.handed < ahead.items && s.in_flight + cost(&items[next]) <= ahead.cost;
                    if next == s.handed || room_left {
                        break next;
                    }
                    s.idle += 1;
                    s = wait(&room, s);
                    s.idle -= 1;
                };
                s.claimed += 1;
                s.in_flight += cost(&items[index]);
                drop(s);
                let result = std::panic::catch_unwind(AssertUnwindSafe(|| work(&items[index])));
                let mut s = lock();
                match result {
                    Ok(result) => drop(s.done.insert(index, result)),
                    Err(_) => s.panicked = true,
                }
                let wake = s.waiting && (index == s.handed || s.panicked);
                drop(s);
                if wake {
                    ready.notify_one();
                }
            });
        }
        // However the caller's loop ends (an error, a panic), workers stop.
        let _stop = Stop {
            state: &state,
            room: &room,
        };
        (|| {
            for (i, item) in items.iter().enumerate() {
                let mut s = lock();
                let result = loop {
                    if let Some(result) = s.done.remove(&i) {
                        break result;
                    }
                    assert!(!s.panicked, "a worker thread panicked");
                    s.waiting = true;
                    s = wait(&ready, s);
                    s.waiting = false;
                };
                s.handed = i + 1;
                s.in_flight -= cost(item);
                let drained = s.claimed - s.handed <= ahead.items / 2 && s.in_flight <= ahead.cost / 2;
                let wake = s.idle > 0 && drained;
                drop(s);
                if wake {
                    room.notify_all();
                }
                each(i, item, result)?;
            }
            Ok(())
        })()
    })
}

/// Stops the workers when dropped.
struct Stop<'a, R> {
    state: &'a Mutex<State<R>>,
    room: &'a Condvar,
}

impl<R> Drop for Stop<'_, R> {
    fn drop(&mut self) {
        let mut s = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        s.stopped = true;
        drop(s);
        self.room.notify_all();
    }
}

/// Waits for `changed`; a thread that panicked holding the lock does not stop the others.
fn wait<'a, S>(changed: &Condvar, guard: MutexGuard<'a, S>) -> MutexGuard<'a, S> {
    changed
        .wait(guard)
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Results come in item order whatever the threads finish first, and
    /// never more than the allowed items are out at once.
    #[test]
    fn results_come_in_order_within_the_window() {
        let items: Vec<u64> = (0..500).collect();
        let out_at_once = std::sync::atomic::AtomicUsize::new(0);
        let max_seen = std::sync::atomic::AtomicUsize::new(0);
        let ahead = Ahead {
            threads: 4,
            items: 8,
            cost: u64::MAX,
        };
        let mut seen = Vec::new();
        run(
            &items,
            ahead,
            |_| 1,
            |&i| {
                let now = out_at_once.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                max_seen.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                // Later items finish first now and then.
                std::thread::yield_now();
                i * 2
            },
            |i, &item, doubled| {
                out_at_once.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                assert_eq!(doubled, item * 2);
                seen.push(i);
                Ok::<_, ()>(())
            },
        )
        .unwrap();
        assert_eq!(seen, (0..500).collect::<Vec<_>>());
        // One more than the window: a worker may claim the next item before
        // the step that made room has counted its item out.
        assert!(max_seen.into_inner() <= 9);
    }

    /// A worker that panics makes the caller panic too, rather than wait
    /// forever for its result; the other workers stop.
    #[test]
    fn a_panicking_worker_is_not_waited_for() {
        let items: Vec<u32> = (0..1000).collect();
        let ahead = Ahead {
            threads: 3,
            items: 16,
            cost: u64::MAX,
        };
        let run = std::panic::catch_unwind(|| {
            run(
                &items,
                ahead,
                |_| 1,
                |&i| assert_ne!(i, 40, "the work failed"),
                |_, _, ()| Ok::<_, ()>(()),
            )
        });
        assert!(run.is_err());
    }

    /// An error of the caller's step stops the run with that error.
    #[test]
    fn the_first_error_stops_the_run() {
        let items: Vec<u32> = (0..10_000).collect();
        let worked = std::sync::atomic::AtomicUsize::new(0);
        let ahead = Ahead {
            threads: 3,
            items: 16,
            cost: 1 << 20,
        };
        let got = run(
            &items,
            ahead,
            |_| 1000,
            |_| worked.fetch_add(1, std::sync::atomic::Ordering::SeqCst),
            |i, _, _| if i == 20 { Err(i) } else { Ok(()) },
        );
        assert_eq!(got, Err(20));
        assert!(worked.into_inner() < 100, "workers stopped early");
    }
}
