//! The state every clone of a fleet channel shares: the endpoints of the last set, one
//! connection per instance address, and the table calls pick from.
//!
//! Calls only read the table, through an `ArcSwap`: no lock and no contended write per call. The
//! table is rebuilt, under a mutex nobody on the call path takes, whenever a new endpoint set
//! arrives or an endpoint's health flips; both are rare next to calls.

use std::{
    collections::{HashMap, HashSet},
    fmt,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use arc_swap::{ArcSwap, Guard};
use flotilla_proto::registry::v1::{EndpointSet, ServingStatus};
use semver::{Version, VersionReq};
use tokio::{sync::Notify, task::AbortHandle};
use tonic::transport::Channel;

use crate::{
    health,
    picker::{Entry, Picker},
    snapshot::{EndpointView, Snapshot},
};

/// How long dialing an instance may take before the call (or probe) fails.
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// HTTP/2 pings find connections that died without a FIN (a crashed host, a cut network).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// One instance address: its connection and what the client knows of its health.
pub(crate) struct Conn {
    pub address: String,
    pub channel: Channel,
    healthy: AtomicBool,
    /// Wakes the health watcher after a call failed on this connection, so it probes afresh.
    pub recheck: Notify,
    /// Weak, so that calls in flight do not keep a dropped channel's tasks alive.
    fleet: Weak<Fleet>,
}

impl Conn {
    fn new(address: &str, fleet: Weak<Fleet>) -> Result<Self, tonic::transport::Error> {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))?
            .tcp_nodelay(true)
            .connect_timeout(DIAL_TIMEOUT)
            .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .connect_lazy();
        Ok(Self {
            address: address.to_owned(),
            channel,
            // Optimistic: the registry already reports it SERVING, and the health watch or the
            // first failed call corrects this within moments.
            healthy: AtomicBool::new(true),
            recheck: Notify::new(),
            fleet,
        })
    }

    /// The fleet this connection belongs to, unless it is gone.
    pub fn fleet(&self) -> Option<Arc<Fleet>> {
        self.fleet.upgrade()
    }

    /// A call could not reach this instance: stop sending it calls at once, and have its
    /// health watcher find out when it is back.
    pub fn call_failed(&self) {
        if let Some(fleet) = self.fleet() {
            fleet.set_health(self, false);
        }
        self.recheck.notify_one();
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Acquire)
    }
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("address", &self.address)
            .field("healthy", &self.is_healthy())
            .finish_non_exhaustive()
    }
}

/// An endpoint of the last set.
#[derive(Debug, Clone)]
struct Instance {
    instance_id: String,
    version: String,
    version_weight: u32,
    serving: bool,
    conn: Arc<Conn>,
}

/// What calls pick from; replaced whole, never changed in place.
#[derive(Debug)]
pub(crate) struct Table {
    /// Grows with every rebuild, so channel clones know when their per-position handles are
    /// stale.
    pub generation: u64,
    instances: Vec<Instance>,
    /// Each instance's health when the table was built.
    healthy: Vec<bool>,
    picker: Picker<usize>,
    revision: u64,
    route_applied: bool,
}

impl Table {
    fn empty() -> Self {
        Self {
            generation: 0,
            instances: Vec::new(),
            healthy: Vec::new(),
            picker: Picker::new(Vec::new()),
            revision: 0,
            route_applied: false,
        }
    }

    /// How many endpoints the table has; picks are positions below this.
    pub fn len(&self) -> usize {
        self.instances.len()
    }

    /// The position and connection that `unit` (uniform in `[0, 1)`) picks, if any.
    pub fn pick(&self, unit: f64) -> Option<(usize, &Arc<Conn>)> {
        let index = *self.picker.pick(unit)?;
        Some((index, &self.instances[index].conn))
    }
}

#[derive(Debug, Default)]
struct State {
    instances: Vec<Instance>,
    /// One connection per address, with its health watcher.
    conns: HashMap<String, (Arc<Conn>, AbortHandle)>,
    revision: u64,
    route_applied: bool,
    generation: u64,
    /// The task following the registry's endpoint sets.
    follower: Option<AbortHandle>,
}

/// The shared core of a [`crate::FleetChannel`].
pub(crate) struct Fleet {
    pub service: String,
    pub requirement: VersionReq,
    pub max_retries: u32,
    idempotent: HashSet<String>,
    table: ArcSwap<Table>,
    state: Mutex<State>,
}

impl Fleet {
    pub fn new(
        service: String,
        requirement: VersionReq,
        max_retries: u32,
        idempotent: HashSet<String>,
    ) -> Self {
        Self {
            service,
            requirement,
            max_retries,
            idempotent,
            table: ArcSwap::from_pointee(Table::empty()),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing under this lock can leave the state half-changed, so a panic elsewhere while
        // holding it does not make it unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether calls to `path` (`/package.Service/Method`) may be retried.
    pub fn is_idempotent(&self, path: &str) -> bool {
        self.max_retries > 0 && self.idempotent.contains(path)
    }

    /// Registers the task following the registry, so it ends with the fleet.
    pub fn set_follower(&self, follower: AbortHandle) {
        self.state().follower = Some(follower);
    }

    /// Replaces the endpoints with a new set from the registry: connections to new addresses are
    /// opened (lazily) and watched, those to addresses that left are dropped.
    pub fn apply(self: &Arc<Self>, set: EndpointSet) {
        let mut state = self.state();
        let mut instances = Vec::with_capacity(set.endpoints.len());
        let mut addresses = HashSet::new();
        for endpoint in set.endpoints {
            // The registry filters by the requirement already; checking again costs nothing and
            // keeps the promise even against a registry that does not.
            match Version::parse(&endpoint.version) {
                Ok(version) if self.requirement.matches(&version) => {}
                _ => continue,
            }
            let conn = match state.conns.get(&endpoint.address) {
                Some((conn, _)) => conn.clone(),
                None => match Conn::new(&endpoint.address, Arc::downgrade(self)) {
                    Ok(conn) => {
                        let conn = Arc::new(conn);
                        let watcher =
                            tokio::spawn(health::watch(Arc::downgrade(self), conn.clone()));
                        state.conns.insert(
                            endpoint.address.clone(),
                            (conn.clone(), watcher.abort_handle()),
                        );
                        conn
                    }
                    Err(error) => {
                        tracing::warn!(address = %endpoint.address, %error, "skipping an endpoint with an unusable address");
                        continue;
                    }
                },
            };
            addresses.insert(endpoint.address.clone());
            instances.push(Instance {
                serving: endpoint.status() == ServingStatus::Serving,
                instance_id: endpoint.instance_id,
                version: endpoint.version,
                version_weight: endpoint.version_weight,
                conn,
            });
        }
        state.conns.retain(|address, (_, watcher)| {
            let keep = addresses.contains(address);
            if !keep {
                watcher.abort();
            }
            keep
        });
        state.instances = instances;
        state.revision += 1;
        state.route_applied = set.route_applied;
        tracing::debug!(service = %self.service, revision = state.revision, endpoints = state.instances.len(), "endpoint set applied");
        self.rebuild(&mut state);
    }

    /// Rebuilds the table from the state and the current health of each connection. Every
    /// health change is followed by a rebuild under the state lock, so the last table built
    /// always reflects the latest health.
    fn rebuild(&self, state: &mut State) {
        state.generation += 1;
        let healthy: Vec<bool> = state
            .instances
            .iter()
            .map(|i| i.conn.is_healthy())
            .collect();
        let entries = state
            .instances
            .iter()
            .zip(&healthy)
            .enumerate()
            .map(|(index, (instance, healthy))| Entry {
                item: index,
                version: instance.version.clone(),
                version_weight: instance.version_weight,
                eligible: instance.serving && *healthy,
            })
            .collect();
        self.table.store(Arc::new(Table {
            generation: state.generation,
            instances: state.instances.clone(),
            healthy,
            picker: Picker::new(entries),
            revision: state.revision,
            route_applied: state.route_applied,
        }));
    }

    /// Records what the health watcher saw.
    pub fn set_health(&self, conn: &Conn, healthy: bool) {
        if conn.healthy.swap(healthy, Ordering::AcqRel) != healthy {
            tracing::debug!(address = %conn.address, healthy, "endpoint health changed");
            self.rebuild(&mut self.state());
        }
    }

    /// The current table, without locking: what the call path reads.
    pub fn table(&self) -> Guard<Arc<Table>> {
        self.table.load()
    }

    /// How many serving instances the last set has (for `wait_for_endpoints`), and how many in all.
    pub fn serving_count(&self) -> (usize, usize) {
        let table = self.table.load();
        let serving = table.instances.iter().filter(|i| i.serving).count();
        (serving, table.instances.len())
    }

    /// Picks the connection for the next attempt, avoiding those already tried when anything
    /// else can take the call.
    pub fn pick(&self, tried: &[Arc<Conn>]) -> Result<Arc<Conn>, tonic::Status> {
        let table = self.table.load();
        let unit = fastrand::f64();
        let picked = if tried.is_empty() {
            table.picker.pick(unit)
        } else {
            table
                .picker
                .pick_avoiding(unit, |&i| {
                    tried
                        .iter()
                        .any(|t| Arc::ptr_eq(t, &table.instances[i].conn))
                })
                .or_else(|| table.picker.pick(unit))
        };
        match picked {
            Some(&index) => Ok(table.instances[index].conn.clone()),
            None => Err(self.nothing_to_call(&table)),
        }
    }

    /// The error of a call that finds no instance to go to.
    pub fn nothing_to_call(&self, table: &Table) -> tonic::Status {
        let known = table.instances.len();
        let serving = table.instances.iter().filter(|i| i.serving).count();
        let counts = if serving == 0 {
            format!("{known} known, 0 serving")
        } else {
            format!("{known} known, {serving} serving but unhealthy")
        };
        tonic::Status::unavailable(format!(
            "no healthy instance of {} satisfying {} ({counts})",
            self.service, self.requirement
        ))
    }

    pub fn snapshot(&self) -> Snapshot {
        let table = self.table.load();
        let shares: HashMap<usize, f64> = table.picker.shares().map(|(&i, s)| (i, s)).collect();
        Snapshot {
            service: self.service.clone(),
            requirement: self.requirement.to_string(),
            revision: table.revision,
            route_applied: table.route_applied,
            endpoints: table
                .instances
                .iter()
                .enumerate()
                .map(|(index, instance)| EndpointView {
                    instance_id: instance.instance_id.clone(),
                    address: instance.conn.address.clone(),
                    version: instance.version.clone(),
                    version_weight: instance.version_weight,
                    serving: instance.serving,
                    healthy: table.healthy[index],
                    share: shares.get(&index).copied().unwrap_or(0.0),
                })
                .collect(),
        }
    }
}

impl Drop for Fleet {
    /// The background tasks hold only weak references, so the last channel clone going away
    /// lands here: stop following the registry and watching instances.
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(follower) = state.follower.take() {
            follower.abort();
        }
        for (_, watcher) in state.conns.values() {
            watcher.abort();
        }
    }
}

impl fmt::Debug for Fleet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fleet")
            .field("service", &self.service)
            .field("requirement", &self.requirement.to_string())
            .field("max_retries", &self.max_retries)
            .finish_non_exhaustive()
    }
}
