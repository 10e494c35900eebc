//! The production store: PostgreSQL, shared by any number of registry processes.
//!
//! Every mutation is one transaction that locks the rows it decides on, so concurrent requests,
//! from this process or another, are checked against each other. Announcements travel through
//! LISTEN/NOTIFY: a transaction queues `pg_notify` for each service it changed, PostgreSQL delivers
//! it only if the transaction commits, and every store (this one included) hears it on its LISTEN
//! connection. Nothing is announced locally, so a watcher hears each change once. Rollouts are
//! announced the same way, on a channel of their own.

use std::{collections::HashMap, fmt, str::FromStr, sync::Arc, time::Duration};

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
    TimeoutType, Transaction,
};
use flotilla_model::{
    AuditAction, AuditEvent, CompatibilityPolicy, EndpointSnapshot, Instance, InstanceId,
    LifecycleEvent, LifecycleState, NewInstance, NewService, NewVersion, Resolution, RolloutId,
    Route, Schema, Service, ServiceName, ServingStatus, Timestamp, Version, VersionRecord,
    VersionReq, VersionWeight,
};
use futures::{StreamExt, stream::BoxStream};
use tokio::sync::{broadcast, oneshot};
use tokio_postgres::{
    AsyncMessage, IsolationLevel, NoTls, Row,
    error::SqlState,
    types::{FromSql, ToSql},
};

use crate::{
    Census, Change, EXPIRED_INSTANCE_RETENTION_MS, Mutation, PublishGate, Published, RegistryStore,
    RolloutChange, StoreError,
    records::{self, PublishPlan, detail},
};

mod outage;
mod rollouts;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The NOTIFY channel every store LISTENs on; a payload is the name of a changed service.
const CHANNEL: &str = "flotilla_registry";

/// The NOTIFY channel of rollouts, on the same LISTEN session; a payload is a rollout id.
const ROLLOUT_CHANNEL: &str = "flotilla_rollouts";

/// The advisory lock that serializes migration runs ("flotilla" in ASCII). Advisory locks are
/// scoped to one database, so registries on other databases of the server do not wait for it.
const MIGRATION_LOCK: i64 = 0x666c_6f74_696c_6c61;

/// The first wait before reconnecting a lost LISTEN connection; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(100);
const MAX_RETRY: Duration = Duration::from_secs(5);

/// A silently dead LISTEN connection would stop announcements without an error, so its TCP
/// keepalive probes start after at most this long.
const LISTEN_KEEPALIVE_IDLE: Duration = Duration::from_secs(30);

/// How to reach the database.
#[derive(Clone)]
pub struct PostgresConfig {
    /// A `postgres://` URL or a libpq `key=value` connection string.
    pub url: String,
    /// The most pooled connections the store opens; the LISTEN connection comes on top.
    pub pool_size: usize,
    /// How long to wait for a new connection, or for a free pooled one, before the store reports
    /// itself unavailable.
    pub connect_timeout: Duration,
    /// What the connections call themselves in `pg_stat_activity`, unless the URL says.
    pub application_name: String,
    /// After failing to reach the database, give the leases that were live before a fresh term
    /// once it is reached again (see `postgres/outage.rs`). The registry's store does; the
    /// orchestrator's, which renews no instance, does not.
    pub renew_leases_after_outage: bool,
}

impl PostgresConfig {
    /// The database at `url`, with 16 pooled connections and a 5 s connect timeout.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            application_name: "flotilla".to_owned(),
            renew_leases_after_outage: false,
        }
    }

    /// Whether leases live before an outage of the database get a fresh term after it.
    pub fn renew_leases_after_outage(mut self, renew: bool) -> Self {
        self.renew_leases_after_outage = renew;
        self
    }

    /// How long to wait for a connection before the store reports itself unavailable.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Names the connections (the registry's and the orchestrator's are told apart this way).
    pub fn application_name(mut self, name: &str) -> Self {
        self.application_name = name.to_owned();
        self
    }
}

impl fmt::Debug for PostgresConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresConfig")
            .field("url", &redact_password(&self.url))
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("application_name", &self.application_name)
            .field("renew_leases_after_outage", &self.renew_leases_after_outage)
            .finish()
    }
}

/// `url` with any password replaced by `***`, so configurations can be logged.
fn redact_password(url: &str) -> String {
    let shown = redact_by_position(url);
    // A malformed URL (say, an unescaped '?' in the password) can defeat the positional pass;
    // whatever the driver would send as the password is hidden all the same.
    match tokio_postgres::Config::from_str(url)
        .ok()
        .and_then(|config| config.get_password().map(<[u8]>::to_vec))
        .and_then(|password| String::from_utf8(password).ok())
    {
        Some(password) if !password.is_empty() && shown.contains(&password) => {
            shown.replace(&password, "***")
        }
        _ => shown,
    }
}

/// `url` with the password of its user info and any `password` parameter replaced by `***`.
fn redact_by_position(url: &str) -> String {
    let Some(scheme_end) = ["postgres://", "postgresql://"]
        .iter()
        .find(|scheme| url.starts_with(*scheme))
        .map(|scheme| scheme.len())
    else {
        return redact_parameter(url, "password", char::is_whitespace);
    };
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    // The last '@' rather than the first: a password with an unescaped '@' must not half-leak.
    let base = match base[scheme_end..].rfind('@') {
        Some(at) => {
            let userinfo = &base[scheme_end..scheme_end + at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:***{}",
                    &base[..scheme_end],
                    &base[scheme_end + at..]
                ),
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match query {
        Some(query) => format!(
            "{base}?{}",
            redact_parameter(query, "password", |c| c == '&')
        ),
        None => base,
    }
}

/// `text` with the value of every `key=value` parameter named `key` replaced by `***`. Values
/// end at a character matching `ends`, or (quoted, libpq style) at the closing quote.
fn redact_parameter(text: &str, key: &str, ends: fn(char) -> bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(found) = rest.find(key) {
        let starts_parameter = rest[..found]
            .chars()
            .next_back()
            .is_none_or(|c| ends(c) || c.is_whitespace());
        out.push_str(&rest[..found + key.len()]);
        rest = &rest[found + key.len()..];
        let after_key = rest.trim_start();
        if !starts_parameter || !after_key.starts_with('=') {
            continue;
        }
        out.push_str(&rest[..rest.len() - after_key.len() + 1]);
        let value = after_key[1..].trim_start();
        out.push_str(&after_key[1..after_key.len() - value.len()]);
        out.push_str("***");
        rest = &value[value_length(value, ends)..];
    }
    out.push_str(rest);
    out
}

/// The length of a parameter value at the start of `text`: quoted, or up to a character matching
/// `ends`.
fn value_length(text: &str, ends: fn(char) -> bool) -> usize {
    if let Some(quoted) = text.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '\'' => return i + 2,
                _ => {}
            }
        }
        return text.len();
    }
    text.find(ends).unwrap_or(text.len())
}

/// The PostgreSQL store. Clones share one pool and one LISTEN connection, which closes when the
/// last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    /// The database URL with its password hidden, for logs.
    shown_url: Arc<str>,
    pool: Pool,
    announcements: Announcements,
    /// Outages of the database this store saw; `None` unless leases are renewed after them.
    outages: Option<Arc<outage::Outages>>,
    /// Dropped with the last clone, which tells the LISTEN task to stop.
    _stop_listening: Arc<oneshot::Sender<()>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

/// The full text of an error and its causes: a driver error's `Display` leaves out the server's
/// message.
fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether an error means the database could not be reached (rather than that it refused the
/// request): errors without a SQLSTATE come from the connection itself.
fn is_connection_error(code: Option<&SqlState>) -> bool {
    match code {
        None => true,
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
        }
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        let text = format!("postgres: {}", describe(&e));
        if is_connection_error(e.code()) {
            StoreError::Unavailable(text)
        } else {
            StoreError::Internal(text)
        }
    }
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => {
                StoreError::Unavailable(format!("connecting to postgres: {}", describe(&e)))
            }
            e @ PoolError::NoRuntimeSpecified => {
                StoreError::Internal(format!("postgres pool: {e}"))
            }
            other => StoreError::Unavailable(format!("postgres pool: {other}")),
        }
    }
}

impl PostgresStore {
    /// Connects, applies pending migrations and starts listening for announcements. Returns once
    /// the store is listening, so a subscriber hears every change committed after this returns.
    pub async fn connect(config: PostgresConfig) -> Result<Self, StoreError> {
        let pg = driver_config(&config)?;
        migrate(&pg).await?;
        let pool = build_pool(&pg, &config)?;
        let announcements = Announcements::new();
        let listen_config = listener_config(&pg);
        let session = Listening::open(&listen_config, &announcements).await?;
        let (stop, stopped) = oneshot::channel();
        let outages = config
            .renew_leases_after_outage
            .then(|| Arc::new(outage::Outages::default()));
        tokio::spawn(listen(
            listen_config,
            session,
            announcements.clone(),
            outages.clone(),
            stopped,
        ));
        Ok(Self {
            shown_url: redact_password(&config.url).into(),
            pool,
            announcements,
            outages,
            _stop_listening: Arc::new(stop),
        })
    }

    async fn client(&self) -> Result<Object, StoreError> {
        let Some(outages) = &self.outages else {
            return Ok(self.pool.get().await?);
        };
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => {
                // A full pool is load, not an outage; a connection that could not be made is.
                if matches!(
                    e,
                    PoolError::Backend(_) | PoolError::Timeout(TimeoutType::Create)
                ) {
                    outages.unreachable();
                }
                return Err(e.into());
            }
        };
        if outages.pending().is_none() {
            outages.reached(None);
            return Ok(client);
        }
        let _renewing = outages.renewing.lock().await;
        // Another connection may have renewed while this one waited.
        let pending = outages.pending();
        if let Some(outage) = pending {
            // Before anything is served: a read now would find the leases lapsed.
            let renewed =
                outage::renew_leases_live_at(&client, outage.since_ms, Timestamp::now()).await?;
            tracing::warn!(
                renewed,
                unreachable_for_ms = Timestamp::now().millis() - outage.since_ms,
                "the database is reachable again; leases live before the outage renewed"
            );
        }
        outages.reached(pending);
        Ok(client)
    }
}

fn driver_config(config: &PostgresConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(|e| {
        StoreError::Internal(format!("the PostgreSQL URL is invalid: {}", describe(&e)))
    })?;
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name(&config.application_name);
    }
    Ok(pg)
}

fn listener_config(pg: &tokio_postgres::Config) -> tokio_postgres::Config {
    let mut listen = pg.clone();
    listen.keepalives_idle(pg.get_keepalives_idle().min(LISTEN_KEEPALIVE_IDLE));
    listen
}

fn build_pool(pg: &tokio_postgres::Config, config: &PostgresConfig) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        pg.clone(),
        NoTls,
        ManagerConfig {
            // A closed connection is noticed without a query; a broken one fails one request.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .build()
        .map_err(|e| StoreError::Internal(format!("building the postgres pool: {e}")))
}

/// Applies pending migrations on a connection of its own, under an advisory lock: registry
/// processes that start together would otherwise race to create the same tables.
async fn migrate(pg: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (mut client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %describe(&e), "the migration connection failed");
        }
    });
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // On failure the connection closes, which releases the lock too.
    embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .map_err(|e| {
            StoreError::Internal(format!("migrating the postgres store: {}", describe(&e)))
        })?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    Ok(())
}

// ---- announcements ---------------------------------------------------------------------------

type Messages = BoxStream<'static, Result<AsyncMessage, tokio_postgres::Error>>;

/// Where the LISTEN session forwards what it hears.
#[derive(Clone)]
struct Announcements {
    changes: broadcast::Sender<Change>,
    rollouts: broadcast::Sender<RolloutChange>,
}

impl Announcements {
    fn new() -> Self {
        Self {
            changes: broadcast::channel(1024).0,
            rollouts: broadcast::channel(1024).0,
        }
    }
}

/// A session LISTENing on [`CHANNEL`] and [`ROLLOUT_CHANNEL`]. It only makes progress while
/// `messages` is polled.
struct Listening {
    /// Held because dropping the client ends the session.
    _client: tokio_postgres::Client,
    messages: Messages,
}

impl Listening {
    async fn open(
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
async fn listen(
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
async fn announce(tx: &Transaction<'_>, service: &ServiceName) -> Result<(), StoreError> {
    execute(
        tx,
        "SELECT pg_notify($1, $2)",
        &[&CHANNEL, &service.as_str()],
    )
    .await?;
    Ok(())
}

// ---- statements ------------------------------------------------------------------------------

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// Reads a column; a failure means the table and this code disagree.
fn col<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| records::corrupt("column", describe(&e)))
}

/// A read-only transaction that sees one snapshot, for reads of several statements.
async fn snapshot(client: &mut Object) -> Result<Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}

// ---- row helpers -----------------------------------------------------------------------------

async fn audit(
    tx: &Transaction<'_>,
    m: &Mutation,
    action: AuditAction,
    service: &ServiceName,
    version: Option<&Version>,
    detail_json: &str,
) -> Result<(), StoreError> {
    let version = version.map(|v| v.to_string()).unwrap_or_default();
    execute(
        tx,
        "INSERT INTO audit_events (at_ms, actor, action, service, version, detail_json)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &m.now.millis(),
            &m.actor,
            &action.as_str(),
            &service.as_str(),
            &version,
            &detail_json,
        ],
    )
    .await?;
    Ok(())
}

const SERVICE_COLUMNS: &str = "name, owner, description, policy_mode, policy_category, created_ms";

fn service_from_row(row: &Row) -> Result<Service, StoreError> {
    Ok(Service {
        name: ServiceName::from_trusted(col(row, 0)?),
        owner: col(row, 1)?,
        description: col(row, 2)?,
        policy: records::parse_policy(col(row, 3)?, col(row, 4)?)?,
        created: Timestamp(col(row, 5)?),
    })
}

async fn load_service(db: &impl GenericClient, name: &ServiceName) -> Result<Service, StoreError> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE name = $1");
    match query_opt(db, &sql, &[&name.as_str()]).await? {
        Some(row) => service_from_row(&row),
        None => Err(StoreError::ServiceNotFound(name.clone())),
    }
}

/// Loads a service and locks its row until commit: changes to a service's versions, route and
/// instances hold it, so they are checked one after another.
async fn lock_service(tx: &Transaction<'_>, name: &ServiceName) -> Result<Service, StoreError> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE name = $1 FOR UPDATE");
    match query_opt(tx, &sql, &[&name.as_str()]).await? {
        Some(row) => service_from_row(&row),
        None => Err(StoreError::ServiceNotFound(name.clone())),
    }
}

async fn require_service(db: &impl GenericClient, name: &ServiceName) -> Result<(), StoreError> {
    match query_opt(
        db,
        "SELECT 1 FROM services WHERE name = $1",
        &[&name.as_str()],
    )
    .await?
    {
        Some(_) => Ok(()),
        None => Err(StoreError::ServiceNotFound(name.clone())),
    }
}

/// The index of the first dependency that names a service that does not exist. Services are
/// never deleted, so the answer cannot change before commit.
async fn first_missing_dependency(
    db: &impl GenericClient,
    new: &NewVersion,
) -> Result<Option<usize>, StoreError> {
    let names: Vec<&str> = new
        .dependencies
        .iter()
        .map(|d| d.service.as_str())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let rows = query(
        db,
        "SELECT name FROM services WHERE name = ANY($1)",
        &[&names],
    )
    .await?;
    let existing = rows
        .iter()
        .map(|row| col::<String>(row, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names.iter().position(|n| !existing.iter().any(|e| e == n)))
}

const VERSION_COLUMNS: &str = "service, version, schema, artifact_json, dependencies_json, \
                               labels_json, state, published_ms, fingerprint";

/// The lifecycle histories of a service's versions (of one version when given), by version.
async fn load_histories(
    db: &impl GenericClient,
    service: &ServiceName,
    version: Option<&Version>,
) -> Result<HashMap<String, Vec<LifecycleEvent>>, StoreError> {
    let version = version.map(|v| v.to_string());
    let rows = query(
        db,
        "SELECT version, state, reason, at_ms, actor FROM version_events
         WHERE service = $1 AND ($2::TEXT IS NULL OR version = $2) ORDER BY version, seq",
        &[&service.as_str(), &version],
    )
    .await?;
    let mut histories: HashMap<String, Vec<LifecycleEvent>> = HashMap::new();
    for row in &rows {
        histories
            .entry(col(row, 0)?)
            .or_default()
            .push(LifecycleEvent {
                state: records::parse_state(col(row, 1)?)?,
                reason: col(row, 2)?,
                at: Timestamp(col(row, 3)?),
                actor: col(row, 4)?,
            });
    }
    Ok(histories)
}

fn version_from_row(
    row: &Row,
    histories: &mut HashMap<String, Vec<LifecycleEvent>>,
) -> Result<VersionRecord, StoreError> {
    let version: String = col(row, 1)?;
    Ok(VersionRecord {
        history: histories.remove(&version).unwrap_or_default(),
        version: records::parse_stored_version(&version)?,
        service: ServiceName::from_trusted(col(row, 0)?),
        schema: Schema::from_stored(col(row, 2)?, col(row, 8)?),
        artifact: records::artifact_from_json(col(row, 3)?)?,
        dependencies: records::dependencies_from_json(col(row, 4)?)?,
        labels: records::map_from_json(col(row, 5)?)?,
        state: records::parse_state(col(row, 6)?)?,
        published: Timestamp(col(row, 7)?),
    })
}

async fn load_version(
    db: &impl GenericClient,
    service: &ServiceName,
    version: &Version,
) -> Result<Option<VersionRecord>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE service = $1 AND version = $2");
    let Some(row) = query_opt(db, &sql, &[&service.as_str(), &version.to_string()]).await? else {
        return Ok(None);
    };
    let mut histories = load_histories(db, service, Some(version)).await?;
    version_from_row(&row, &mut histories).map(Some)
}

async fn load_versions(
    db: &impl GenericClient,
    service: &ServiceName,
) -> Result<Vec<VersionRecord>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE service = $1");
    let rows = query(db, &sql, &[&service.as_str()]).await?;
    let mut histories = load_histories(db, service, None).await?;
    let mut versions = rows
        .iter()
        .map(|row| version_from_row(row, &mut histories))
        .collect::<Result<Vec<_>, _>>()?;
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(versions)
}

/// Locks a version's row until commit, so a transition waits for (and is not lost to) another
/// change of the same version. False when the version does not exist.
async fn lock_version(
    tx: &Transaction<'_>,
    service: &ServiceName,
    version: &Version,
) -> Result<bool, StoreError> {
    Ok(query_opt(
        tx,
        "SELECT 1 FROM versions WHERE service = $1 AND version = $2 FOR UPDATE",
        &[&service.as_str(), &version.to_string()],
    )
    .await?
    .is_some())
}

/// Every version of a service with its state, highest first. `share_lock` keeps the states from
/// changing until commit, for a transaction whose decision depends on them.
async fn load_version_states(
    db: &impl GenericClient,
    service: &ServiceName,
    share_lock: bool,
) -> Result<Vec<(Version, LifecycleState)>, StoreError> {
    let sql = if share_lock {
        "SELECT version, state FROM versions WHERE service = $1 FOR SHARE"
    } else {
        "SELECT version, state FROM versions WHERE service = $1"
    };
    let rows = query(db, sql, &[&service.as_str()]).await?;
    let mut states = rows
        .iter()
        .map(|row| {
            Ok((
                records::parse_stored_version(col(row, 0)?)?,
                records::parse_state(col(row, 1)?)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    states.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(states)
}

/// The state of one version, locked against transitions until commit; None when not published.
async fn share_version_state(
    tx: &Transaction<'_>,
    service: &ServiceName,
    version: &Version,
) -> Result<Option<LifecycleState>, StoreError> {
    let row = query_opt(
        tx,
        "SELECT state FROM versions WHERE service = $1 AND version = $2 FOR SHARE",
        &[&service.as_str(), &version.to_string()],
    )
    .await?;
    row.map(|row| records::parse_state(col(&row, 0)?))
        .transpose()
}

async fn append_history(
    tx: &Transaction<'_>,
    service: &ServiceName,
    version: &Version,
    state: LifecycleState,
    reason: &str,
    m: &Mutation,
) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO version_events (service, version, seq, state, reason, at_ms, actor)
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6
         FROM version_events WHERE service = $1 AND version = $2",
        &[
            &service.as_str(),
            &version.to_string(),
            &state.as_str(),
            &reason,
            &m.now.millis(),
            &m.actor,
        ],
    )
    .await?;
    Ok(())
}

const INSTANCE_COLUMNS: &str = "id, service, version, address, metadata_json, status, \
                                lease_ttl_ms, registered_ms, expires_ms";

fn instance_from_row(row: &Row) -> Result<Instance, StoreError> {
    Ok(Instance {
        id: InstanceId::from_trusted(col(row, 0)?),
        service: ServiceName::from_trusted(col(row, 1)?),
        version: records::parse_stored_version(col(row, 2)?)?,
        address: col(row, 3)?,
        metadata: records::map_from_json(col(row, 4)?)?,
        status: records::parse_status(col(row, 5)?)?,
        lease_ttl_ms: u32::try_from(col::<i64>(row, 6)?)
            .map_err(|e| records::corrupt("lease ttl", e))?,
        registered: Timestamp(col(row, 7)?),
        expires: Timestamp(col(row, 8)?),
    })
}

/// Instances from `rows`, by version then address.
fn sorted_instances(rows: &[Row]) -> Result<Vec<Instance>, StoreError> {
    let mut instances = rows
        .iter()
        .map(instance_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    instances.sort_by(|a, b| a.version.cmp(&b.version).then(a.address.cmp(&b.address)));
    Ok(instances)
}

/// Loads an instance, and whether the reaper marked it expired, and locks its row until commit.
async fn lock_instance(
    tx: &Transaction<'_>,
    id: &InstanceId,
) -> Result<Option<(Instance, bool)>, StoreError> {
    let sql = format!("SELECT {INSTANCE_COLUMNS}, expired FROM instances WHERE id = $1 FOR UPDATE");
    query_opt(tx, &sql, &[&id.as_str()])
        .await?
        .map(|row| Ok((instance_from_row(&row)?, col(&row, 9)?)))
        .transpose()
}

async fn live_instances(
    db: &impl GenericClient,
    service: &ServiceName,
    now: Timestamp,
) -> Result<Vec<Instance>, StoreError> {
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances
         WHERE service = $1 AND NOT expired AND expires_ms > $2"
    );
    sorted_instances(&query(db, &sql, &[&service.as_str(), &now.millis()]).await?)
}

fn route_from_row(service: &ServiceName, row: &Row) -> Result<Route, StoreError> {
    Ok(Route {
        service: service.clone(),
        weights: records::weights_from_json(col(row, 0)?)?,
        updated: Timestamp(col(row, 1)?),
    })
}

async fn load_route(
    db: &impl GenericClient,
    service: &ServiceName,
) -> Result<Option<Route>, StoreError> {
    query_opt(
        db,
        "SELECT weights_json, updated_ms FROM routes WHERE service = $1",
        &[&service.as_str()],
    )
    .await?
    .map(|row| route_from_row(service, &row))
    .transpose()
}

fn audit_event_from_row(row: &Row) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: u64::try_from(col::<i64>(row, 0)?).map_err(|e| records::corrupt("audit id", e))?,
        at: Timestamp(col(row, 1)?),
        actor: col(row, 2)?,
        action: col(row, 3)?,
        service: col(row, 4)?,
        version: col(row, 5)?,
        detail_json: col(row, 6)?,
    })
}

// ---- the trait -------------------------------------------------------------------------------

#[async_trait]
impl RegistryStore for PostgresStore {
    async fn create_service(&self, new: NewService, m: &Mutation) -> Result<Service, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // ON CONFLICT: a concurrent create of the same name waits for the other to commit and
        // then inserts nothing, rather than failing on the unique index.
        let sql = format!(
            "INSERT INTO services ({SERVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO NOTHING RETURNING {SERVICE_COLUMNS}"
        );
        let row = query_opt(
            &tx,
            &sql,
            &[
                &new.name.as_str(),
                &new.owner,
                &new.description,
                &new.policy.mode.as_str(),
                &new.policy.category.as_str(),
                &m.now.millis(),
            ],
        )
        .await?;
        let Some(row) = row else {
            return Err(StoreError::ServiceExists(new.name));
        };
        let service = service_from_row(&row)?;
        audit(
            &tx,
            m,
            AuditAction::ServiceCreate,
            &new.name,
            None,
            &detail::service(&new.owner, &new.policy),
        )
        .await?;
        announce(&tx, &new.name).await?;
        tx.commit().await?;
        Ok(service)
    }

    async fn get_service(&self, name: &ServiceName) -> Result<Service, StoreError> {
        let client = self.client().await?;
        load_service(&client, name).await
    }

    async fn list_services(
        &self,
        after: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<Service>, StoreError> {
        let client = self.client().await?;
        // COLLATE "C": byte order, as in the SQLite store, whatever the database's collation
        // (a natural-language one would ignore the '-' in names and break paging).
        let sql = format!(
            "SELECT {SERVICE_COLUMNS} FROM services WHERE name COLLATE \"C\" > $1
             ORDER BY name COLLATE \"C\" LIMIT $2"
        );
        let after = after.map(|a| a.as_str()).unwrap_or_default();
        let rows = query(&client, &sql, &[&after, &i64::from(limit)]).await?;
        rows.iter().map(service_from_row).collect()
    }

    async fn set_policy(
        &self,
        name: &ServiceName,
        policy: CompatibilityPolicy,
        m: &Mutation,
    ) -> Result<Service, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let service = lock_service(&tx, name).await?;
        execute(
            &tx,
            "UPDATE services SET policy_mode = $2, policy_category = $3 WHERE name = $1",
            &[
                &name.as_str(),
                &policy.mode.as_str(),
                &policy.category.as_str(),
            ],
        )
        .await?;
        audit(
            &tx,
            m,
            AuditAction::ServiceSetPolicy,
            name,
            None,
            &detail::service(&service.owner, &policy),
        )
        .await?;
        announce(&tx, name).await?;
        tx.commit().await?;
        Ok(Service { policy, ..service })
    }

    async fn publish_version(
        &self,
        new: NewVersion,
        gate: Arc<dyn PublishGate>,
        m: &Mutation,
    ) -> Result<Published, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The lock makes concurrent publishes to this service take turns, so each sees the
        // versions the others committed: one of two publishes of a version wins.
        let service = lock_service(&tx, &new.service).await?;
        let existing = load_versions(&tx, &new.service).await?;
        let missing_dependency = first_missing_dependency(&tx, &new).await?;
        let plan = records::plan_publish(&new, &service, &existing, missing_dependency, &*gate)?;
        if let PublishPlan::AlreadyPublished(version) = plan {
            tx.commit().await?;
            return Ok(Published {
                version: *version,
                created: false,
            });
        }
        execute(
            &tx,
            &format!(
                "INSERT INTO versions ({VERSION_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &new.service.as_str(),
                &new.version.to_string(),
                &new.schema.bytes(),
                &records::artifact_to_json(&new.artifact),
                &records::dependencies_to_json(&new.dependencies),
                &records::map_to_json(&new.labels),
                &LifecycleState::Released.as_str(),
                &m.now.millis(),
                &new.schema.fingerprint(),
            ],
        )
        .await?;
        append_history(
            &tx,
            &new.service,
            &new.version,
            LifecycleState::Released,
            "published",
            m,
        )
        .await?;
        audit(
            &tx,
            m,
            AuditAction::VersionPublish,
            &new.service,
            Some(&new.version),
            &detail::publish(&new),
        )
        .await?;
        announce(&tx, &new.service).await?;
        let version = load_version(&tx, &new.service, &new.version)
            .await?
            .ok_or_else(|| StoreError::Internal("published version vanished".into()))?;
        tx.commit().await?;
        Ok(Published {
            version,
            created: true,
        })
    }

    async fn get_version(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<VersionRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let record = load_version(&tx, service, version).await?;
        tx.commit().await?;
        record.ok_or_else(|| StoreError::VersionNotFound {
            service: service.clone(),
            version: version.clone(),
        })
    }

    async fn list_versions(&self, service: &ServiceName) -> Result<Vec<VersionRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let versions = load_versions(&tx, service).await?;
        tx.commit().await?;
        Ok(versions)
    }

    async fn resolve(
        &self,
        service: &ServiceName,
        requirement: &VersionReq,
    ) -> Result<(Resolution, Option<VersionRecord>), StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let states = load_version_states(&tx, service, false).await?;
        let resolution = flotilla_model::resolve(states.iter().map(|(v, s)| (v, *s)), requirement);
        let record = match &resolution.selected {
            Some(version) => load_version(&tx, service, version).await?,
            None => None,
        };
        tx.commit().await?;
        Ok((resolution, record))
    }

    async fn transition_version(
        &self,
        service: &ServiceName,
        version: &Version,
        to: LifecycleState,
        reason: &str,
        m: &Mutation,
    ) -> Result<VersionRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        require_service(&tx, service).await?;
        let not_found = || StoreError::VersionNotFound {
            service: service.clone(),
            version: version.clone(),
        };
        if !lock_version(&tx, service, version).await? {
            return Err(not_found());
        }
        let record = load_version(&tx, service, version)
            .await?
            .ok_or_else(not_found)?;
        let moves =
            record
                .state
                .check_transition(to)
                .map_err(|source| StoreError::IllegalTransition {
                    service: service.clone(),
                    version: version.clone(),
                    source,
                })?;
        if !moves {
            tx.commit().await?;
            return Ok(record);
        }
        execute(
            &tx,
            "UPDATE versions SET state = $3 WHERE service = $1 AND version = $2",
            &[&service.as_str(), &version.to_string(), &to.as_str()],
        )
        .await?;
        append_history(&tx, service, version, to, reason, m).await?;
        audit(
            &tx,
            m,
            AuditAction::VersionTransition,
            service,
            Some(version),
            &detail::transition(record.state, to, reason),
        )
        .await?;
        announce(&tx, service).await?;
        let record = load_version(&tx, service, version)
            .await?
            .ok_or_else(|| StoreError::Internal("transitioned version vanished".into()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn register_instance(
        &self,
        new: NewInstance,
        m: &Mutation,
    ) -> Result<Instance, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_service(&tx, &new.service).await?;
        // Shared lock: a concurrent yank waits, so no instance runs a version yanked under it.
        let state = share_version_state(&tx, &new.service, &new.version).await?;
        records::check_register(&new, state)?;
        let id = records::new_instance_id();
        let sql = format!(
            "INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING {INSTANCE_COLUMNS}"
        );
        let row = query_opt(
            &tx,
            &sql,
            &[
                &id,
                &new.service.as_str(),
                &new.version.to_string(),
                &new.address,
                &records::map_to_json(&new.metadata),
                &new.status.as_str(),
                &i64::from(new.lease_ttl_ms),
                &m.now.millis(),
                &m.now.plus_millis(u64::from(new.lease_ttl_ms)).millis(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("registered instance vanished".into()))?;
        let instance = instance_from_row(&row)?;
        audit(
            &tx,
            m,
            AuditAction::InstanceRegister,
            &new.service,
            Some(&new.version),
            &detail::instance(&id, &new.address),
        )
        .await?;
        announce(&tx, &new.service).await?;
        tx.commit().await?;
        Ok(instance)
    }

    async fn heartbeat(
        &self,
        id: &InstanceId,
        status: Option<ServingStatus>,
        now: Timestamp,
    ) -> Result<Instance, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some((current, reaped)) = lock_instance(&tx, id).await? else {
            return Err(StoreError::InstanceNotFound(id.clone()));
        };
        // `reaped` as well as the lease: another registry process, whose clock may be ahead of
        // this caller's, may have expired it already, and a renewal would leave it unlisted.
        if reaped || !current.is_live(now) {
            return Err(StoreError::LeaseExpired {
                id: id.clone(),
                expired: current.expires,
            });
        }
        let status = status.unwrap_or(current.status);
        let sql = format!(
            "UPDATE instances SET expires_ms = $2, status = $3 WHERE id = $1
             RETURNING {INSTANCE_COLUMNS}"
        );
        let row = query_opt(
            &tx,
            &sql,
            &[
                &id.as_str(),
                &now.plus_millis(u64::from(current.lease_ttl_ms)).millis(),
                &status.as_str(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("renewed instance vanished".into()))?;
        // A renewal alone changes nothing a watcher sees; announcing it would wake every watcher
        // on every heartbeat.
        if status != current.status {
            announce(&tx, &current.service).await?;
        }
        let renewed = instance_from_row(&row)?;
        tx.commit().await?;
        Ok(renewed)
    }

    async fn deregister_instance(&self, id: &InstanceId, m: &Mutation) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some((current, _)) = lock_instance(&tx, id).await? else {
            return Err(StoreError::InstanceNotFound(id.clone()));
        };
        execute(&tx, "DELETE FROM instances WHERE id = $1", &[&id.as_str()]).await?;
        audit(
            &tx,
            m,
            AuditAction::InstanceDeregister,
            &current.service,
            Some(&current.version),
            &detail::instance(id.as_str(), &current.address),
        )
        .await?;
        announce(&tx, &current.service).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_instances(
        &self,
        service: &ServiceName,
        version: Option<&Version>,
        now: Timestamp,
    ) -> Result<Vec<Instance>, StoreError> {
        let client = self.client().await?;
        require_service(&client, service).await?;
        let mut instances = live_instances(&client, service, now).await?;
        if let Some(version) = version {
            instances.retain(|i| &i.version == version);
        }
        Ok(instances)
    }

    async fn expire_instances(&self, now: Timestamp) -> Result<Vec<Instance>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A concurrent heartbeat either renews first (and the row no longer matches) or waits
        // and finds the lease expired. Rows are locked in id order, so two reapers in two
        // processes wait for each other instead of deadlocking, and each expires a lease once.
        let sql = format!(
            "UPDATE instances SET expired = TRUE WHERE id IN (
                 SELECT id FROM instances WHERE NOT expired AND expires_ms <= $1
                 ORDER BY id FOR UPDATE)
             RETURNING {INSTANCE_COLUMNS}"
        );
        let expired = sorted_instances(&query(&tx, &sql, &[&now.millis()]).await?)?;
        let registry = Mutation {
            actor: "registry".into(),
            now,
        };
        for instance in &expired {
            audit(
                &tx,
                &registry,
                AuditAction::InstanceExpire,
                &instance.service,
                Some(&instance.version),
                &detail::instance(instance.id.as_str(), &instance.address),
            )
            .await?;
            announce(&tx, &instance.service).await?;
        }
        let forget_before = now.millis() - EXPIRED_INSTANCE_RETENTION_MS as i64;
        execute(
            &tx,
            "DELETE FROM instances WHERE expired AND expires_ms < $1",
            &[&forget_before],
        )
        .await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn set_route(
        &self,
        service: &ServiceName,
        weights: Vec<VersionWeight>,
        m: &Mutation,
    ) -> Result<Route, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_service(&tx, service).await?;
        // Shared locks: a version cannot be yanked while a route gives it traffic.
        records::check_route(&weights, &load_version_states(&tx, service, true).await?)?;
        let row = query_opt(
            &tx,
            "INSERT INTO routes (service, weights_json, updated_ms) VALUES ($1, $2, $3)
             ON CONFLICT (service) DO UPDATE
                 SET weights_json = EXCLUDED.weights_json, updated_ms = EXCLUDED.updated_ms
             RETURNING weights_json, updated_ms",
            &[
                &service.as_str(),
                &records::weights_to_json(&weights),
                &m.now.millis(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("route vanished".into()))?;
        let route = route_from_row(service, &row)?;
        audit(
            &tx,
            m,
            AuditAction::RouteSet,
            service,
            None,
            &detail::route(&weights),
        )
        .await?;
        announce(&tx, service).await?;
        tx.commit().await?;
        Ok(route)
    }

    async fn get_route(&self, service: &ServiceName) -> Result<Option<Route>, StoreError> {
        let client = self.client().await?;
        require_service(&client, service).await?;
        load_route(&client, service).await
    }

    async fn endpoint_snapshot(
        &self,
        service: &ServiceName,
        now: Timestamp,
    ) -> Result<EndpointSnapshot, StoreError> {
        let mut client = self.client().await?;
        // One snapshot: the three reads see one committed state.
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let snapshot = EndpointSnapshot {
            versions: load_version_states(&tx, service, false).await?,
            instances: live_instances(&tx, service, now).await?,
            route: load_route(&tx, service).await?,
            service: service.clone(),
        };
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn list_audit(
        &self,
        service: Option<&ServiceName>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let client = self.client().await?;
        let service = service.map(|s| s.as_str());
        let before = before_id.map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
        let rows = query(
            &client,
            "SELECT id, at_ms, actor, action, service, version, detail_json FROM audit_events
             WHERE id < $1 AND ($2::TEXT IS NULL OR service = $2) ORDER BY id DESC LIMIT $3",
            &[&before, &service, &i64::from(limit)],
        )
        .await?;
        rows.iter().map(audit_event_from_row).collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.announcements.changes.subscribe()
    }

    async fn census(&self, now: Timestamp) -> Result<Census, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let mut census = Census::default();
        let versions = query(
            &tx,
            "SELECT service, state, COUNT(*) FROM versions GROUP BY service, state",
            &[],
        )
        .await?;
        for row in &versions {
            census.versions.push((
                ServiceName::from_trusted(col(row, 0)?),
                records::parse_state(col(row, 1)?)?,
                records::stored_count("version count", col(row, 2)?)?,
            ));
        }
        let instances = query(
            &tx,
            "SELECT service, version, COUNT(*) FROM instances
             WHERE NOT expired AND expires_ms > $1 GROUP BY service, version",
            &[&now.millis()],
        )
        .await?;
        for row in &instances {
            census.instances.push((
                ServiceName::from_trusted(col(row, 0)?),
                records::parse_stored_version(col(row, 1)?)?,
                records::stored_count("instance count", col(row, 2)?)?,
            ));
        }
        tx.commit().await?;
        records::sort_census(&mut census);
        Ok(census)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password_of_a_url() {
        let config = PostgresConfig::new("postgres://registry:s3cr@t@db.internal:5432/flotilla");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(
            shown.contains("postgres://registry:***@db.internal:5432/flotilla"),
            "{shown}"
        );
        assert!(shown.contains("pool_size: 16"), "{shown}");
    }

    #[test]
    fn passwords_in_query_strings_and_key_value_strings_are_hidden() {
        assert_eq!(
            redact_password("postgresql://db/flotilla?sslmode=disable&password=hunter2&x=1"),
            "postgresql://db/flotilla?sslmode=disable&password=***&x=1"
        );
        assert_eq!(
            redact_password("host=db user=registry password = 'a b\\' c' dbname=flotilla"),
            "host=db user=registry password = *** dbname=flotilla"
        );
        assert_eq!(
            redact_password("host=db password=hunter2"),
            "host=db password=***"
        );
        assert_eq!(
            redact_password("postgres://registry@db/flotilla"),
            "postgres://registry@db/flotilla"
        );
        assert_eq!(
            redact_password("postgres://registry:pa?ss@db/flotilla"),
            "postgres://registry:***@db/flotilla"
        );
        assert_eq!(
            redact_password("host=db user=no_password_here"),
            "host=db user=no_password_here"
        );
    }

    #[test]
    fn connection_errors_are_unavailable_and_others_internal() {
        assert!(is_connection_error(None));
        assert!(is_connection_error(Some(&SqlState::CONNECTION_FAILURE)));
        assert!(is_connection_error(Some(&SqlState::ADMIN_SHUTDOWN)));
        assert!(!is_connection_error(Some(&SqlState::UNIQUE_VIOLATION)));
        assert!(!is_connection_error(Some(&SqlState::SYNTAX_ERROR)));
    }

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable() {
        let mut config = PostgresConfig::new("postgres://nobody:secret@127.0.0.1:1/flotilla");
        config.connect_timeout = Duration::from_millis(500);
        match PostgresStore::connect(config).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(!message.contains("secret"), "{message}")
            }
            other => panic!("expected an unavailable store, got {other:?}"),
        }
    }
}
