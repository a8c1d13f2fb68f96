//! Keeps a bot within Telegram's flood limits: per chat, per group, overall, and the bot-wide pause
//! a 429 asks for.
//!
//! Each limit is a sliding window: at most `max` messages in any `per`. A message counts from the
//! moment it is allowed until `per` after its request finished, so that however long the request
//! travels, the server never sees more than `max` arrivals in a window: the last one allowed in a
//! window was counted against every earlier one whose request had not finished `per` before.
//! Nothing is written here for the fairness between chats; waiting tasks race for free slots.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// At most `max` messages in any `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub max: usize,
    pub per: Duration,
}

impl Window {
    pub const fn new(max: usize, per: Duration) -> Self {
        Self { max, per }
    }
}

/// The limits a bot keeps. [`PacingLimits::default`] is what Telegram documents; other values are
/// for tests and benchmarks against the fake server, which checks whatever limits it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingLimits {
    /// Any one chat (a forum's topics share their chat's limit).
    pub per_chat: Window,
    /// Group chats (negative ids), on top of `per_chat`.
    pub per_group: Window,
    /// All chats together.
    pub overall: Window,
}

impl Default for PacingLimits {
    /// ~1 message per second per chat, 20 per minute per group, 30 per second overall.
    fn default() -> Self {
        Self {
            per_chat: Window::new(1, Duration::from_secs(1)),
            per_group: Window::new(20, Duration::from_secs(60)),
            overall: Window::new(30, Duration::from_secs(1)),
        }
    }
}

impl PacingLimits {
    /// The same counts over windows `factor` times as long (`factor` < 1 is faster); for
    /// benchmarks that cannot wait for real minutes.
    pub fn scaled(self, factor: f64) -> Self {
        let scale = |w: Window| Window::new(w.max, w.per.mul_f64(factor));
        Self {
            per_chat: scale(self.per_chat),
            per_group: scale(self.per_group),
            overall: scale(self.overall),
        }
    }
}

/// Telegram's group and supergroup ids are negative (channels too, which the group limit suits).
pub fn is_group(chat: i64) -> bool {
    chat < 0
}

/// The pacing state of one bot, shared by all its chats.
#[derive(Debug)]
pub struct Pacer {
    limits: PacingLimits,
    /// No message before this: a previous process may have sent to any chat just before this
    /// one started (a restart), and its slots are not known here. One per-chat window covers
    /// the per-chat limit; the per-group and overall windows across a restart are left to
    /// Telegram's 429s, which pause the bot.
    not_before: Option<Instant>,
    state: Mutex<State>,
    /// Signalled when a request finishes, freeing a slot sooner than a timer would say.
    finished: Notify,
}

#[derive(Debug, Default)]
struct State {
    paused_until: Option<Instant>,
    chats: HashMap<i64, VecDeque<Slot>>,
    overall: VecDeque<Slot>,
    next_id: u64,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    id: u64,
    /// When its request finished; `None` while in flight.
    done: Option<Instant>,
}

/// A granted slot; dropping it marks the request finished.
#[derive(Debug)]
pub struct Permit<'a> {
    pacer: &'a Pacer,
    chat: i64,
    id: u64,
}

impl Pacer {
    pub fn new(limits: PacingLimits) -> Self {
        Self {
            limits,
            not_before: None,
            state: Mutex::new(State::default()),
            finished: Notify::new(),
        }
    }

    /// As [`Pacer::new`], but the first message waits one per-chat window: for a bot that may
    /// have sent just before this process started.
    pub fn after_restart(limits: PacingLimits) -> Self {
        Self {
            not_before: Some(Instant::now() + limits.per_chat.per),
            ..Self::new(limits)
        }
    }

    pub fn limits(&self) -> PacingLimits {
        self.limits
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits until a message may go to `chat` now, and takes the slot.
    pub async fn acquire(&self, chat: i64) -> Permit<'_> {
        loop {
            let notified = self.finished.notified();
            tokio::pin!(notified);
            // Registered before checking, so that a finish between the check and the wait wakes us.
            notified.as_mut().enable();
            let wait = {
                let mut state = self.state();
                let now = Instant::now();
                match self.next_allowed(&mut state, chat, now) {
                    None => {
                        let id = state.next_id;
                        state.next_id += 1;
                        let slot = Slot { id, done: None };
                        state.chats.entry(chat).or_default().push_back(slot);
                        state.overall.push_back(slot);
                        return Permit {
                            pacer: self,
                            chat,
                            id,
                        };
                    }
                    Some(wait) => wait,
                }
            };
            match wait {
                Some(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = &mut notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Waits out a bot-wide pause, for calls that are not paced (deletes, downloads).
    pub async fn wait_unpaused(&self) {
        loop {
            let until = self.state().paused_until;
            match until {
                Some(at) if at > Instant::now() => tokio::time::sleep_until(at).await,
                _ => return,
            }
        }
    }

    /// Stops every call of the bot for `retry_after` (a 429's answer).
    pub fn pause_for(&self, retry_after: Duration) {
        let until = Instant::now() + retry_after;
        let mut state = self.state();
        if state.paused_until.is_none_or(|at| at < until) {
            state.paused_until = Some(until);
        }
    }

    /// How much longer the bot-wide pause lasts.
    pub fn paused_for(&self) -> Option<Duration> {
        let until = self.state().paused_until?;
        let left = until.saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// `None` when a message may go now; else `Some(Some(t))` to retry at `t`, or `Some(None)` to
    /// wait for a request in flight to finish.
    fn next_allowed(&self, state: &mut State, chat: i64, now: Instant) -> Option<Option<Instant>> {
        let limits = self.limits;
        let keep = limits.per_chat.per.max(limits.per_group.per);
        prune(state.chats.entry(chat).or_default(), now, keep);
        prune(&mut state.overall, now, limits.overall.per);
        state.chats.retain(|_, slots| !slots.is_empty());

        let mut later: Option<Option<Instant>> = None;
        let mut merge = |w: Option<Option<Instant>>| {
            later = match (later, w) {
                (None, w) | (w, None) => w,
                (Some(Some(a)), Some(Some(b))) => Some(Some(a.max(b))),
                (Some(_), Some(_)) => Some(None),
            }
        };
        if let Some(gate) = self.not_before.filter(|g| *g > now) {
            merge(Some(Some(gate)));
        }
        if let Some(until) = state.paused_until {
            if until > now {
                merge(Some(Some(until)));
            } else {
                state.paused_until = None;
            }
        }
        let empty = VecDeque::new();
        let slots = state.chats.get(&chat).unwrap_or(&empty);
        merge(blocked(slots, limits.per_chat, now));
        if is_group(chat) {
            merge(blocked(slots, limits.per_group, now));
        }
        merge(blocked(&state.overall, limits.overall, now));
        later
    }

    fn finish(&self, chat: i64, id: u64) {
        let now = Instant::now();
        {
            let mut state = self.state();
            let mark = |slots: &mut VecDeque<Slot>| {
                if let Some(slot) = slots.iter_mut().find(|s| s.id == id) {
                    slot.done = Some(now);
                }
            };
            if let Some(slots) = state.chats.get_mut(&chat) {
                mark(slots);
            }
            mark(&mut state.overall);
        }
        self.finished.notify_waiters();
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.pacer.finish(self.chat, self.id);
    }
}

/// Forgets slots that finished more than `keep` ago.
fn prune(slots: &mut VecDeque<Slot>, now: Instant, keep: Duration) {
    slots.retain(|s| s.done.is_none_or(|done| done + keep > now));
}

/// Whether `window` is full at `now`, and if so until when (`None`: until something in flight
/// finishes).
fn blocked(slots: &VecDeque<Slot>, window: Window, now: Instant) -> Option<Option<Instant>> {
    let counted: Vec<Option<Instant>> = slots
        .iter()
        .map(|s| s.done)
        .filter(|done| done.is_none_or(|d| d + window.per > now))
        .collect();
    if counted.len() < window.max.max(1) {
        return None;
    }
    // Enough must expire to leave room for one more: the (excess+1)-th earliest finish.
    let mut finished: Vec<Instant> = counted.iter().flatten().copied().collect();
    finished.sort_unstable();
    let excess = counted.len() - window.max.max(1);
    Some(finished.get(excess).map(|d| *d + window.per))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// Sends (acquire, release at once) and returns the offsets from the start.
    async fn send_times(pacer: &Pacer, chats: &[i64]) -> Vec<Duration> {
        let start = Instant::now();
        let mut times = Vec::new();
        for &chat in chats {
            let permit = pacer.acquire(chat).await;
            times.push(start.elapsed());
            drop(permit);
        }
        times
    }

    #[tokio::test(start_paused = true)]
    async fn paces_one_chat_to_one_message_per_second() {
        let pacer = Pacer::new(PacingLimits::default());
        let times = send_times(&pacer, &[42, 42, 42]).await;
        assert_eq!(times, [Duration::ZERO, SECOND, 2 * SECOND]);
    }

    #[tokio::test(start_paused = true)]
    async fn different_private_chats_do_not_wait_for_each_other() {
        let pacer = Pacer::new(PacingLimits::default());
        let times = send_times(&pacer, &[1, 2, 3]).await;
        assert_eq!(times, [Duration::ZERO; 3]);
    }

    #[tokio::test(start_paused = true)]
    async fn counts_the_interval_from_when_the_request_finished() {
        let pacer = Pacer::new(PacingLimits::default());
        let start = Instant::now();
        let permit = pacer.acquire(7).await;
        tokio::time::sleep(5 * SECOND).await; // a slow request
        drop(permit);
        let _next = pacer.acquire(7).await;
        assert_eq!(start.elapsed(), 6 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn a_group_gets_twenty_messages_per_minute() {
        let pacer = Pacer::new(PacingLimits::default());
        let times = send_times(&pacer, &[-100; 22]).await;
        let expected: Vec<Duration> = (0..20).map(|i| i * SECOND).collect();
        assert_eq!(times[..20], expected[..]);
        // The 21st waits until the first has been out of the window for a minute.
        assert_eq!(times[20], 60 * SECOND);
        assert_eq!(times[21], 61 * SECOND);
    }

    #[tokio::test(start_paused = true)]
    async fn all_chats_together_get_thirty_per_second() {
        let pacer = Arc::new(Pacer::new(PacingLimits::default()));
        let start = Instant::now();
        let mut tasks = Vec::new();
        for chat in 1..=45 {
            let pacer = Arc::clone(&pacer);
            tasks.push(tokio::spawn(async move {
                let _permit = pacer.acquire(chat).await;
                start.elapsed()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.expect("task"));
        }
        times.sort();
        assert!(times[..30].iter().all(|t| t.is_zero()), "{times:?}");
        assert!(times[30..].iter().all(|t| *t == SECOND), "{times:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_chat() {
        let pacer = Pacer::new(PacingLimits::default());
        pacer.pause_for(3 * SECOND);
        pacer.pause_for(SECOND); // a shorter pause does not shorten the longer one
        assert_eq!(pacer.paused_for(), Some(3 * SECOND));
        let times = send_times(&pacer, &[1, 2]).await;
        assert_eq!(times, [3 * SECOND, 3 * SECOND]);
        let start = Instant::now();
        pacer.pause_for(2 * SECOND);
        pacer.wait_unpaused().await;
        assert_eq!(start.elapsed(), 2 * SECOND);
        assert_eq!(pacer.paused_for(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_wakes_when_the_request_in_flight_finishes() {
        let pacer = Arc::new(Pacer::new(PacingLimits {
            overall: Window::new(1, SECOND),
            ..PacingLimits::default()
        }));
        let start = Instant::now();
        let permit = pacer.acquire(1).await;
        let waiter = {
            let pacer = Arc::clone(&pacer);
            tokio::spawn(async move {
                let _p = pacer.acquire(2).await;
                start.elapsed()
            })
        };
        tokio::time::sleep(10 * SECOND).await;
        drop(permit);
        assert_eq!(waiter.await.expect("waiter"), 11 * SECOND);
    }

    #[test]
    fn scaled_limits_keep_counts_and_shrink_windows() {
        let fast = PacingLimits::default().scaled(0.1);
        assert_eq!(fast.per_chat, Window::new(1, Duration::from_millis(100)));
        assert_eq!(fast.per_group, Window::new(20, Duration::from_secs(6)));
        assert_eq!(fast.overall, Window::new(30, Duration::from_millis(100)));
    }
}
