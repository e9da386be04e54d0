//! The loop every connection runs, whichever door it came through.
//!
//! A door authenticates, opens a [`Session`], and hands it to [`run`] with a [`Transport`]:
//! the few things that differ between a plain WebSocket and a Socket.IO namespace socket
//! (how a client input is read and answered, how events are written, whether the loop owes
//! the client a heartbeat, how a close is said). Everything else is here, once: the session
//! start (default topics, resume, `hello`), the wait on five things at once (the kill
//! switch, the token's expiry, the heartbeat, the hub's queue, the client), the batching of
//! queued events into one write, and the close.
//!
//! # Slow consumers
//! The hub never waits for a session: a full queue flags the session's kill switch
//! ([`crate::realtime::hub::Kill`]). Every write here also watches that switch, so a client
//! that stopped reading cannot pin its task — the close happens even while a write is
//! blocked. Memory per client stays bounded by its queue and the transport's buffers.
//!
//! # Timers
//! The heartbeat and expiry timers and the kill switch's future live across iterations:
//! re-creating them per event would register and clear timer entries and a waiter on every
//! delivery.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::realtime::close::CloseCode;
use crate::realtime::hub::{Kill, Outbound};
use crate::realtime::session::{Accept, Push, Session};

/// Deliveries written per batch at most (then the loop looks at the client again).
pub const BATCH: usize = 64;

/// Read buffer of a connection's WebSocket, on both doors. Every idle connection holds one
/// (zeroed, never shrunk), and client frames are small: a larger one takes a few reads.
pub const READ_BUFFER: usize = 512;

/// Why a connection's loop stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Close with this code (a reconnect-range code tells the client to come back).
    Close(CloseCode),
    /// The peer went away or the transport failed: nothing more to write.
    Gone,
}

/// What the client sent.
#[derive(Debug)]
pub enum Inbound<I> {
    /// An input for [`Transport::handle`].
    Input(I),
    /// Proof of life only (a WebSocket ping or pong).
    Heard,
    /// The connection ended.
    End(End),
}

/// What differs between the doors.
pub trait Transport: Send {
    /// One client input (a text frame; a Socket.IO event with its ack).
    type Input: Send;

    /// The Socket.IO namespace the connection serves, `None` for every topic (`/ws`).
    fn namespace(&self) -> Option<&str>;

    /// Interval of the heartbeat the loop owes the client, `None` when the transport has
    /// its own (Engine.IO pings on its own).
    fn heartbeat(&self) -> Option<Duration>;

    /// The client's next input. Must be cancel-safe: the loop drops it when something else
    /// happens first.
    fn recv(&mut self) -> impl Future<Output = Inbound<Self::Input>> + Send;

    /// Handles one input (rate limit, parse, command) and writes its answer.
    fn handle(&mut self, session: &mut Session, input: Self::Input) -> impl Future<Output = Result<(), End>> + Send;

    /// Writes the session's greeting.
    fn hello(&mut self, hello: Value) -> impl Future<Output = Result<(), End>> + Send;

    /// Writes pushes, in order, as one write where the transport can.
    /// Takes them all out of `pushes` (the loop reuses its buffer: no allocation per write).
    fn write(&mut self, pushes: &mut Vec<Push>) -> impl Future<Output = Result<(), End>> + Send;

    /// Sends a heartbeat (only called when [`Transport::heartbeat`] asks for one).
    fn ping(&mut self) -> impl Future<Output = Result<(), End>> + Send {
        async { Ok(()) }
    }

    /// The session's block set changed: keep what the transport derives from it in step
    /// (Socket.IO's per-account rooms). Called before the first subscription, too.
    fn blocks_changed(&mut self, _session: &mut Session) {}

    /// Says goodbye for `end` (close frame, or `reconnect`/`closed` event).
    fn finish(&mut self, end: End) -> impl Future<Output = ()> + Send;
}

/// Runs a connection to its end: starts the session (personal topics, resumed from
/// `positions`, then `hello` and the replay), serves it, says goodbye and closes the
/// session.
///
/// Takes everything by value: an async fn's arguments live in its future for as long as it
/// runs, so a caller that kept its own copies across this call would hold them twice.
pub async fn run<T: Transport>(
    mut t: T,
    mut session: Session,
    mut rx: mpsc::Receiver<Outbound>,
    positions: HashMap<String, String>,
) -> End {
    // What runs once per connection is boxed: a task's future is as large as its largest
    // state, and the idle state (`serve` waiting) is what thousands of connections hold.
    let end = match Box::pin(start(&mut t, &mut session, &positions)).await {
        Ok(()) => serve(&mut t, &mut session, &mut rx).await,
        Err(end) => end,
    };
    Box::pin(t.finish(end)).await;
    Box::pin(session.close()).await;
    end
}

/// Subscribes the session's default topics and writes `hello` and what it replayed.
pub async fn start<T: Transport>(
    t: &mut T,
    session: &mut Session,
    positions: &HashMap<String, String>,
) -> Result<(), End> {
    // Before any subscription: an event by a blocked account must never get through.
    t.blocks_changed(session);
    let ns = t.namespace().map(str::to_owned);
    let (hello, mut replay) = session.start(ns.as_deref(), positions).await;
    let handle = session.handle.clone();
    let kill = &handle.kill;
    guarded(kill, t.hello(hello)).await?;
    if !replay.is_empty() {
        guarded(kill, t.write(&mut replay)).await?;
    }
    Ok(())
}

/// The connection's loop, after [`start`]: returns why it stopped.
pub async fn serve<T: Transport>(t: &mut T, session: &mut Session, rx: &mut mpsc::Receiver<Outbound>) -> End {
    let ns = t.namespace().map(str::to_owned);
    let heartbeat = t.heartbeat();
    let mut pace = Pace {
        write_delay: Duration::from_millis(session.hub_config().write_delay_ms),
        queue_frames: session.hub_config().queue_frames,
        next_write: Instant::now(),
        pushes: Vec::new(),
    };
    // The session's handle, shared: its kill switch is watched while `session` is lent out.
    let handle = session.handle.clone();
    let kill = &handle.kill;
    let killed = kill.killed();
    let mut last_heard = Instant::now();
    // Without a heartbeat of ours the timer is parked far away and never fires.
    let every = heartbeat.unwrap_or(Duration::from_secs(86_400 * 365));
    let ping = sleep_until(Instant::now() + every);
    let (mut armed_for, expiry) = session.expiry_timer();
    tokio::pin!(killed, ping, expiry);
    loop {
        session.rearm_expiry(&mut armed_for, expiry.as_mut());
        let step = tokio::select! {
            code = &mut killed => Err(End::Close(code)),
            _ = &mut expiry => Err(End::Close(CloseCode::TOKEN_EXPIRED)),
            input = t.recv() => {
                last_heard = Instant::now();
                match input {
                    // Boxed: a command's database work must not size the idle connection.
                    Inbound::Input(i) => guarded(kill, Box::pin(t.handle(session, i))).await,
                    Inbound::Heard => Ok(()),
                    Inbound::End(end) => Err(end),
                }
            }
            out = rx.recv() => match out {
                None => Err(End::Gone),
                Some(first) => deliver(t, session, ns.as_deref(), first, rx, kill, &mut pace).await,
            },
            _ = &mut ping => {
                if last_heard.elapsed() > every * 2 {
                    Err(End::Close(CloseCode::HEARTBEAT_TIMEOUT))
                } else {
                    ping.as_mut().reset(Instant::now() + every);
                    guarded(kill, t.ping()).await
                }
            }
        };
        if let Err(end) = step {
            return end;
        }
    }
}

/// Longest a session behind on its events holds a write to let more join it.
pub const MAX_COALESCE: Duration = Duration::from_millis(100);
/// Lag below which a session writes at once.
const MIN_LAG: Duration = Duration::from_millis(5);

/// When a session writes, and the buffer it writes from.
struct Pace {
    /// `hub.write_delay_ms`: a fixed hold on every write (off by default).
    write_delay: Duration,
    /// What a held write must fit in.
    queue_frames: usize,
    /// No write before this: set after each write from how late its first event was.
    next_write: Instant,
    /// The next write's pushes: one buffer for the connection's life, emptied by each
    /// write, so a delivery allocates nothing. A burst's capacity is given back.
    pushes: Vec<Push>,
}

/// Writes `first` and whatever else is queued.
///
/// # Coalescing under pressure
/// A write costs a syscall whatever it carries, so a session that receives events faster
/// than it is woken for them should write several at once. After each write, the session
/// does not write again for as long as that write's first event had waited since the hub
/// took it (its lag; at most [`MAX_COALESCE`], nothing under [`MIN_LAG`]). A session that
/// keeps up writes every event at once. One that falls behind — the hub is saturated —
/// holds its next write by about as much as it is behind already, and what arrives meanwhile
/// shares the write, which takes load off the machine until the lag falls again. An event
/// that arrives after the hold has passed (a connection receiving a few events a second)
/// is written at once, lagging or not.
async fn deliver<T: Transport>(
    t: &mut T,
    session: &mut Session,
    namespace: Option<&str>,
    first: Outbound,
    rx: &mut mpsc::Receiver<Outbound>,
    kill: &Kill,
    pace: &mut Pace,
) -> Result<(), End> {
    let now = Instant::now();
    let lag = match &first {
        Outbound::Event(d) => now.saturating_duration_since(d.born),
        _ => Duration::ZERO,
    };
    let hold = if !pace.write_delay.is_zero() && rx.len() < BATCH {
        Some(now + pace.write_delay)
    } else {
        (pace.next_write > now).then_some(pace.next_write)
    };
    let mut limit = BATCH;
    if let Some(until) = hold {
        // Let events that arrive meanwhile share this write, then take all of them: with
        // BATCH per hold, a connection receiving more than that would fall further behind
        // with each hold until its queue overflowed. (What arrives within one hold must
        // fit the queue.)
        guarded(kill, async {
            sleep_until(until).await;
            Ok(())
        })
        .await?;
        limit = pace.queue_frames;
    }
    let rechecked = collect(session, namespace, first, rx, limit, &mut pace.pushes).await;
    if rechecked {
        t.blocks_changed(session);
    }
    if pace.pushes.is_empty() {
        return Ok(());
    }
    let written = guarded(kill, t.write(&mut pace.pushes)).await;
    if pace.pushes.capacity() > BATCH {
        pace.pushes = Vec::new();
    }
    if lag >= MIN_LAG {
        pace.next_write = Instant::now() + lag.min(MAX_COALESCE);
    }
    written
}

/// What the queue holds right now, up to `limit` deliveries, as pushes (into `out`) to
/// write together: a connection with a backlog drains it in one write, one without pays
/// for one event. Returns whether the batch re-checked the session (its block set may have
/// changed).
async fn collect(
    session: &mut Session,
    namespace: Option<&str>,
    first: Outbound,
    rx: &mut mpsc::Receiver<Outbound>,
    limit: usize,
    out: &mut Vec<Push>,
) -> bool {
    let mut rechecked = false;
    let mut next = Some(first);
    let mut taken = 0;
    while let Some(o) = next {
        match o {
            Outbound::Event(d) => match session.accept(&d).await {
                Accept::Send => out.push(Push::Event(d)),
                Accept::Skip => {}
                Accept::Many(mut pushes) => out.append(&mut pushes),
            },
            // Rare and database-bound: boxed, so they do not size every connection's task.
            Outbound::Resync => out.append(&mut Box::pin(session.resync()).await),
            Outbound::Recheck => {
                out.append(&mut Box::pin(session.recheck(namespace)).await);
                rechecked = true;
            }
        }
        taken += 1;
        next = if taken < limit { rx.try_recv().ok() } else { None };
    }
    rechecked
}

/// Runs `io` unless the session is killed first. Biased: the write usually completes on its
/// first poll, without looking at the switch.
async fn guarded(kill: &Kill, io: impl Future<Output = Result<(), End>>) -> Result<(), End> {
    tokio::select! {
        biased;
        r = io => r,
        code = kill.killed() => Err(End::Close(code)),
    }
}

#[cfg(test)]
mod tests {
    //! The loop against a scripted transport, on paused time: heartbeats, expiry and slow
    //! consumers take no real time and no sleeps.

    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::auth::AccessClaims;
    use crate::config::Config;
    use crate::domain::{Id, now_ms};
    use crate::events::{Envelope, EventName, Topic};
    use crate::realtime::hub::Door;

    /// What the scripted transport saw the loop do.
    #[derive(Debug, Clone, PartialEq)]
    enum Did {
        Hello,
        Ping,
        Wrote(usize),
        Finished(End),
    }

    struct Script {
        heartbeat: Option<Duration>,
        inputs: mpsc::UnboundedReceiver<Inbound<()>>,
        log: Arc<Mutex<Vec<Did>>>,
        /// Writes never complete (a client that stopped reading).
        stalled: bool,
    }

    impl Transport for Script {
        type Input = ();

        fn namespace(&self) -> Option<&str> {
            None
        }

        fn heartbeat(&self) -> Option<Duration> {
            self.heartbeat
        }

        async fn recv(&mut self) -> Inbound<()> {
            match self.inputs.recv().await {
                Some(i) => i,
                None => std::future::pending().await,
            }
        }

        async fn handle(&mut self, _: &mut Session, _: ()) -> Result<(), End> {
            Ok(())
        }

        async fn hello(&mut self, _: Value) -> Result<(), End> {
            self.log.lock().unwrap().push(Did::Hello);
            Ok(())
        }

        async fn write(&mut self, pushes: &mut Vec<Push>) -> Result<(), End> {
            if self.stalled {
                std::future::pending::<()>().await;
            }
            self.log.lock().unwrap().push(Did::Wrote(pushes.len()));
            pushes.clear();
            Ok(())
        }

        async fn ping(&mut self) -> Result<(), End> {
            self.log.lock().unwrap().push(Did::Ping);
            Ok(())
        }

        async fn finish(&mut self, end: End) {
            self.log.lock().unwrap().push(Did::Finished(end));
        }
    }

    struct Rig {
        _dir: tempfile::TempDir,
        app: crate::app::Chorus,
        log: Arc<Mutex<Vec<Did>>>,
        inputs: mpsc::UnboundedSender<Inbound<()>>,
        script: Option<Script>,
    }

    /// A real instance (SQLite in a temporary directory) and a scripted transport. Built on
    /// real time: the database is not driven by paused time.
    async fn rig(heartbeat: Option<Duration>, stalled: bool, queue_frames: usize) -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config { data_dir: dir.path().to_path_buf(), ..Config::default() };
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.hub.queue_frames = queue_frames;
        let app = crate::app::Chorus::build(config).await.unwrap();
        let (tx, inputs) = mpsc::unbounded_channel();
        let log = Arc::new(Mutex::new(Vec::new()));
        let script = Script { heartbeat, inputs, log: log.clone(), stalled };
        Rig { _dir: dir, app, log, inputs: tx, script: Some(script) }
    }

    impl Rig {
        /// Opens a session for user 7 whose token expires in `expires_in`, and starts it.
        async fn open(&mut self, expires_in: Duration) -> (Session, mpsc::Receiver<Outbound>) {
            let (mut session, rx) = self.session(expires_in).await;
            let script = self.script.as_mut().unwrap();
            start(script, &mut session, &HashMap::new()).await.unwrap();
            (session, rx)
        }

        /// Opens a session for user 7 whose token expires in `expires_in`.
        async fn session(&self, expires_in: Duration) -> (Session, mpsc::Receiver<Outbound>) {
            let exp = (now_ms() + expires_in.as_millis() as i64) / 1000;
            let claims = AccessClaims { sub: "7".into(), sid: "9".into(), jti: "j".into(), iat: exp - 900, exp };
            Session::open(self.app.state(), &claims, Door::Ws).await.unwrap()
        }

        /// The hub, and the session's position on its feed (subscribed on start).
        fn feed(&self, session: &Session) -> (Arc<crate::realtime::hub::Hub>, i64) {
            let base = session.position(&Topic::Feed(Id(7))).expect("feed subscribed on start");
            (self.app.state().hub.clone(), base)
        }

        fn did(&self) -> Vec<Did> {
            self.log.lock().unwrap().clone()
        }
    }

    fn feed_event(seq: i64) -> Envelope {
        Envelope {
            topic: Topic::Feed(Id(7)).key().into(),
            event: EventName::PostCreated,
            seq: Some(seq),
            data: r#"{"id":"1"}"#.into(),
            actor: None,
        }
    }

    #[tokio::test]
    async fn a_silent_client_is_pinged_then_dropped_after_two_intervals() {
        let mut rig = rig(Some(Duration::from_secs(10)), false, 16).await;
        let (mut session, mut rx) = rig.open(Duration::from_secs(3600)).await;
        tokio::time::pause();
        let t0 = Instant::now();
        let end = serve(rig.script.as_mut().unwrap(), &mut session, &mut rx).await;
        assert_eq!(end, End::Close(CloseCode::HEARTBEAT_TIMEOUT));
        // A ping at 10 s; at the next tick, 20 s (and the timer's millisecond) after the
        // last word from the client, it has been silent for two intervals.
        let lived = t0.elapsed();
        assert!(lived > Duration::from_secs(20) && lived < Duration::from_millis(20_010), "{lived:?}");
        assert_eq!(rig.did(), vec![Did::Hello, Did::Ping]);
    }

    #[tokio::test]
    async fn a_client_that_answers_stays_until_its_token_expires() {
        let mut rig = rig(Some(Duration::from_secs(10)), false, 16).await;
        let (mut session, mut rx) = rig.open(Duration::from_secs(95)).await;
        tokio::time::pause();
        let t0 = Instant::now();
        let inputs = rig.inputs.clone();
        // The client answers every ping (the transport's pong counts as proof of life).
        let mut script = rig.script.take().unwrap();
        let log = rig.log.clone();
        let answer = tokio::spawn(async move {
            let mut answered = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let pings = log.lock().unwrap().iter().filter(|d| **d == Did::Ping).count();
                if pings > answered {
                    answered = pings;
                    if inputs.send(Inbound::Heard).is_err() {
                        return;
                    }
                }
            }
        });
        let end = serve(&mut script, &mut session, &mut rx).await;
        answer.abort();
        assert_eq!(end, End::Close(CloseCode::TOKEN_EXPIRED));
        // Expiry is on whole seconds of the wall clock: within a second of the 95 s asked.
        let lived = t0.elapsed();
        assert!(lived > Duration::from_secs(93) && lived <= Duration::from_secs(95), "{lived:?}");
        let pings = rig.did().iter().filter(|d| **d == Did::Ping).count();
        assert_eq!(pings, 9, "{:?}", rig.did());
    }

    #[tokio::test]
    async fn queued_events_go_out_in_one_write() {
        let mut rig = rig(None, false, 16).await;
        let (mut session, mut rx) = rig.open(Duration::from_secs(3600)).await;
        let (hub, base) = rig.feed(&session);
        let position = |s: &Session| s.position(&Topic::Feed(Id(7)));
        for seq in 1..=5 {
            hub.deliver(feed_event(base + seq));
        }
        tokio::time::pause();
        let mut script = rig.script.take().unwrap();
        let served = tokio::time::timeout(Duration::from_secs(60), serve(&mut script, &mut session, &mut rx)).await;
        assert!(served.is_err(), "the loop keeps serving");
        assert_eq!(rig.did(), vec![Did::Hello, Did::Wrote(5)]);
        assert_eq!(position(&session), Some(base + 5));
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_cut_off_while_its_write_is_blocked() {
        let mut rig = rig(None, true, 8).await;
        let (mut session, mut rx) = rig.open(Duration::from_secs(3600)).await;
        let (hub, base) = rig.feed(&session);
        tokio::time::pause();
        let mut script = rig.script.take().unwrap();
        let loop_ = async { serve(&mut script, &mut session, &mut rx).await };
        let flood = async {
            // The first event starts a write that never completes; the queue then fills.
            for seq in 1..=20 {
                hub.deliver(feed_event(base + seq));
                tokio::task::yield_now().await;
            }
            std::future::pending::<()>().await
        };
        let end = tokio::select! {
            end = loop_ => end,
            _ = flood => unreachable!(),
        };
        assert_eq!(end, End::Close(CloseCode::SLOW_CONSUMER));
        assert_eq!(rig.did(), vec![Did::Hello], "nothing was written");
    }

    /// Waits, a millisecond of paused time at a time, until the transport did `n` things.
    async fn until(log: &Mutex<Vec<Did>>, n: usize) -> Instant {
        while log.lock().unwrap().len() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Instant::now()
    }

    #[tokio::test]
    async fn a_session_behind_holds_its_next_write_one_that_keeps_up_does_not() {
        let mut rig = rig(None, false, 64).await;
        let (mut session, mut rx) = rig.open(Duration::from_secs(3600)).await;
        let (hub, base) = rig.feed(&session);
        tokio::time::pause();
        // The first event waits 40 ms in the queue before the session gets to it.
        hub.deliver(feed_event(base + 1));
        tokio::time::advance(Duration::from_millis(40)).await;
        let mut script = rig.script.take().unwrap();
        let log = rig.log.clone();
        let driver = async {
            let first = until(&log, 2).await;
            // Two fresh events right after: held until 40 ms after the first write, together.
            hub.deliver(feed_event(base + 2));
            hub.deliver(feed_event(base + 3));
            let second = until(&log, 3).await;
            // Once the hold has passed, a fresh event is written at once.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let sent = Instant::now();
            hub.deliver(feed_event(base + 4));
            let third = until(&log, 4).await;
            (second - first, third - sent)
        };
        let (held, prompt) = tokio::select! {
            _ = serve(&mut script, &mut session, &mut rx) => unreachable!("the loop keeps serving"),
            r = driver => r,
        };
        assert_eq!(rig.did(), vec![Did::Hello, Did::Wrote(1), Did::Wrote(2), Did::Wrote(1)]);
        assert!(held >= Duration::from_millis(39) && held <= Duration::from_millis(42), "{held:?}");
        // (Paused time moves in the timer's whole milliseconds.)
        assert!(prompt <= Duration::from_millis(3), "{prompt:?}");
    }

    /// Every idle connection holds this future (and its transport's) for its lifetime: the
    /// once-per-connection and rare steps are boxed out of it. A change that inlines one
    /// again (a database call in the loop, say) grows it by kilobytes and fails here.
    #[tokio::test]
    async fn the_loop_an_idle_connection_holds_stays_small() {
        let mut rig = rig(None, false, 16).await;
        let (session, rx) = rig.session(Duration::from_secs(3600)).await;
        let script = rig.script.take().unwrap();
        let fut = run(script, session, rx, HashMap::new());
        let size = std::mem::size_of_val(&fut);
        assert!(size <= 2048, "the connection loop's future is {size} bytes");
    }

    #[tokio::test]
    async fn a_kill_ends_the_loop_with_its_code() {
        let mut rig = rig(None, false, 16).await;
        let (mut session, mut rx) = rig.open(Duration::from_secs(3600)).await;
        session.handle.kill.kill(CloseCode::TOKEN_REVOKED);
        tokio::time::pause();
        let end = serve(rig.script.as_mut().unwrap(), &mut session, &mut rx).await;
        assert_eq!(end, End::Close(CloseCode::TOKEN_REVOKED));
    }
}
