//! Announcements through LISTEN/NOTIFY: the `pg_notify` a transaction queues, and the LISTEN
//! session that forwards what it hears to subscribers and reconnects when it is lost.

use std::{sync::Arc, time::Duration};

use deadpool_postgres::Transaction;
use flotilla_model::{RolloutId, ServiceName};
use futures::{StreamExt, stream::BoxStream};
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::{AsyncMessage, NoTls};

use super::{outage, statements::execute};
use crate::{Change, RolloutChange, StoreError};

/// The NOTIFY channel every store LISTENs on; a payload is the name of a changed service.
const CHANNEL: &str = "flotilla_registry";

/// The NOTIFY channel of rollouts, on the same LISTEN session; a payload is a rollout id.
pub(super) const ROLLOUT_CHANNEL: &str = "flotilla_rollouts";

/// The first wait before reconnecting a lost LISTEN connection; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A silently dead LISTEN connection would stop announcements without an error, so its TCP
/// keepalive probes start after at most this long.
const LISTEN_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

pub(super) fn listener_config(pg: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut listen = pg.clone();
    listen.keepalives_idle(pg.get_keepalives_idle().min(LISTEN_KEEPALIVE_IDLE));
    listen
}

type Messages = BoxStream<'static, Result<AsyncMessage, tokio_postgres::Error>>;

/// Where the LISTEN session forwards what it hears.
#[derive(Clone)]
pub(super) struct Announcements {
    pub(super) changes: broadcast::Sender<Change>,
    pub(super) rollouts: broadcast::Sender<RolloutChange>,
}

impl Announcements {
    pub(super) fn new() -> Self {
        Self {
            changes: broadcast::channel(1024).0,
            rollouts: broadcast::channel(1024).0,
        }
    }
}

/// A session LISTENing on [`CHANNEL`] and [`ROLLOUT_CHANNEL`]. It only makes progress while
/// `messages` is polled.
pub(super) struct Listening {
    /// Held because dropping the client ends the session.
    _client: tokio_postgres::Client,
    messages: Messages,
}

impl Listening {
    pub(super) async fn open(
        pg: &tokio_postgres::Config,
        announcements: &Announcements,
    ) -> Result<Self, StoreError> {
        let (client, mut connection) = pg.connect(NoTls).await?;
        let mut messages: Messages =
            futures::stream::poll_fn(move |cx| connection.poll_message(cx)).boxed();
        let statement = format!("LISTEN {CHANNEL}; LISTEN {ROLLOUT_CHANNEL}");
        drive(
            client.batch_execute(&statement),
            &mut messages,
            announcements,
        )
        .await??;
        Ok(Self {
            _client: client,
            messages,
        })
    }

    /// Forwards notifications until the session ends, and says why it ended.
    async fn run(&mut self, announcements: &Announcements) -> StoreError {
        loop {
            match self.messages.next().await {
                Some(Ok(message)) => forward(message, announcements),
                Some(Err(e)) => return e.into(),
                None => return StoreError::Unavailable("the LISTEN connection closed".into()),
            }
        }
    }
}

/// Awaits `request` while polling the session's messages, which is what moves it along.
async fn drive<F: Future>(
    request: F,
    messages: &mut Messages,
    announcements: &Announcements,
) -> Result<F::Output, StoreError> {
    tokio::pin!(request);
    loop {
        tokio::select! {
            output = &mut request => return Ok(output),
            message = messages.next() => match message {
                Some(Ok(message)) => forward(message, announcements),
                Some(Err(e)) => return Err(e.into()),
                None => return Err(StoreError::Unavailable("the LISTEN connection closed".into())),
            },
        }
    }
}

fn forward(message: AsyncMessage, announcements: &Announcements) {
    match message {
        // An error from `send` only means nobody is subscribed right now.
        AsyncMessage::Notification(n) if n.channel() == CHANNEL => {
            let _ = announcements
                .changes
                .send(Change::Service(ServiceName::from_trusted(
                    n.payload().to_owned(),
                )));
        }
        AsyncMessage::Notification(n) if n.channel() == ROLLOUT_CHANNEL => {
            let _ = announcements
                .rollouts
                .send(RolloutChange::Rollout(RolloutId::from_trusted(
                    n.payload().to_owned(),
                )));
        }
        AsyncMessage::Notice(notice) => {
            tracing::debug!(notice = %notice, "postgres notice on the LISTEN connection");
        }
        _ => {}
    }
}

/// The LISTEN task: forwards notifications, reconnects when the session is lost, and ends when
/// `stop` is dropped with the last store clone.
pub(super) async fn listen(
    pg: tokio_postgres::Config,
    mut session: Listening,
    announcements: Announcements,
    outages: Option<Arc<outage::Outages>>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            biased;
            _ = &mut stop => return,
            lost = session.run(&announcements) => {
                tracing::warn!(error = %lost, "lost the postgres LISTEN connection; reconnecting");
                // The first sign of an outage, often: pooled connections that were idle only
                // find out at their next query.
                if let Some(outages) = &outages {
                    outages.unreachable();
                }
            }
        }
        session = tokio::select! {
            biased;
            _ = &mut stop => return,
            session = reconnect(&pg, &announcements) => session,
        };
        tracing::info!("listening for registry and rollout changes again");
        // Whatever was committed while the session was down was announced to nobody.
        let _ = announcements.changes.send(Change::All);
        let _ = announcements.rollouts.send(RolloutChange::All);
    }
}

async fn reconnect(pg: &tokio_postgres::Config, announcements: &Announcements) -> Listening {
    let mut delay = FIRST_RETRY;
    loop {
        tokio::time::sleep(delay).await;
        match Listening::open(pg, announcements).await {
            Ok(session) => return session,
            Err(e) => {
                delay = (delay * 2).min(MAX_RETRY);
                tracing::warn!(error = %e, retry_in = ?delay, "reconnecting the postgres LISTEN connection failed");
            }
        }
    }
}

/// Queues the announcement of a change to `service`; PostgreSQL delivers it on commit, and
/// folds repeats within one transaction into one.
pub(super) async fn announce(
    tx: &Transaction<'_>,
    service: &ServiceName,
) -> Result<(), StoreError> {
    execute(
        tx,
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &service.as_str()],
    )
    .await?;
    Ok(())
}
