//! One piece of work over many items, on a few threads.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `work` on every item, taken in order, on `threads` threads; stops
/// taking items at the first error, and returns it.
pub fn for_each<T: Sync, E: Send>(
    items: &[T],
    threads: usize,
    work: impl Fn(&T) -> Result<(), E> + Sync,
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                while failed.lock().unwrap().is_none() {
                    let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        return;
                    };
                    if let Err(e) = work(item) {
                        failed.lock().unwrap().get_or_insert(e);
                    }
                }
            });
        }
    });
    failed.into_inner().unwrap().map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_and_the_first_error_stops_it() {
        let seen = Mutex::new(Vec::new());
        let items: Vec<u32> = (0..100).collect();
        for_each(&items, 4, |&i| {
            seen.lock().unwrap().push(i);
            Ok::<(), ()>(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, items);
        let done = AtomicUsize::new(0);
        let outcome = for_each(&items, 1, |&i| {
            done.fetch_add(1, Ordering::Relaxed);
            if i == 10 {
                Err(i)
            } else {
                Ok(())
            }
        });
        assert_eq!(outcome, Err(10));
        assert_eq!(
            done.load(Ordering::Relaxed),
            11,
            "no item is taken after the error"
        );
    }
}
