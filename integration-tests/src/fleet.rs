//! A sample fleet on real processes: a registry, greeter instances and frontends.

use std::collections::BTreeMap;

use flotilla_proto::{
    demo::frontend::v1::{GreetRequest, frontend_client::FrontendClient},
    registry::v1::{self as pb, registry_client::RegistryClient},
};
use tonic::transport::Channel;

use crate::SuiteProcess;

/// A registry on the embedded in-memory store, and the processes started against it.
#[derive(Debug)]
pub struct Fleet {
    pub registry: SuiteProcess,
    pub processes: Vec<SuiteProcess>,
}

impl Fleet {
    pub fn start() -> anyhow::Result<Self> {
        Ok(Self {
            registry: SuiteProcess::registry(&["--data-file", ":memory:"])?,
            processes: Vec::new(),
        })
    }

    /// Starts a greeter of `release` published as `version`, with extra flags; returns its index.
    pub fn greeter(
        &mut self,
        release: &str,
        version: &str,
        extra: &[&str],
    ) -> anyhow::Result<usize> {
        let registry = self.registry.endpoint();
        let mut args = vec![
            "--registry",
            &registry,
            "--release",
            release,
            "--version",
            version,
        ];
        args.extend_from_slice(extra);
        self.processes
            .push(SuiteProcess::start("demo-greeter", &args)?);
        Ok(self.processes.len() - 1)
    }

    /// Starts a frontend published as `version` that accepts greeters matching `requirement`.
    pub fn frontend(&mut self, version: &str, requirement: &str) -> anyhow::Result<usize> {
        let registry = self.registry.endpoint();
        let args = [
            "--registry",
            &registry,
            "--version",
            version,
            "--greeter-requirement",
            requirement,
        ];
        self.processes
            .push(SuiteProcess::start("demo-frontend", &args)?);
        Ok(self.processes.len() - 1)
    }

    pub async fn registry_client(&self) -> anyhow::Result<RegistryClient<Channel>> {
        Ok(RegistryClient::connect(self.registry.endpoint()).await?)
    }

    pub async fn frontend_client(&self, index: usize) -> anyhow::Result<FrontendClient<Channel>> {
        Ok(FrontendClient::connect(self.processes[index].endpoint()).await?)
    }

    /// Sets greeter's route to `weights` (version, weight).
    pub async fn set_route(&self, weights: &[(&str, u32)]) -> anyhow::Result<()> {
        self.registry_client()
            .await?
            .set_route(pb::SetRouteRequest {
                service: "greeter".into(),
                weights: weights
                    .iter()
                    .map(|(version, weight)| pb::VersionWeight {
                        version: (*version).into(),
                        weight: *weight,
                    })
                    .collect(),
            })
            .await?;
        Ok(())
    }
}

/// Calls through a frontend `calls` times from `concurrency` tasks and counts the greeter
/// versions that answered; failed calls are counted under `"<failed: CODE>"`.
pub async fn count_answers(
    frontend: &FrontendClient<Channel>,
    calls: usize,
    concurrency: usize,
) -> BTreeMap<String, usize> {
    let per_task = calls / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let mut client = frontend.clone();
            tokio::spawn(async move {
                let mut counts = BTreeMap::<String, usize>::new();
                for _ in 0..per_task {
                    let key = match client
                        .greet(GreetRequest {
                            name: "fleet".into(),
                            locale: String::new(),
                        })
                        .await
                    {
                        Ok(reply) => reply.into_inner().greeter_version,
                        Err(status) => format!("<failed: {:?}>", status.code()),
                    };
                    *counts.entry(key).or_default() += 1;
                }
                counts
            })
        })
        .collect();
    let mut total = BTreeMap::new();
    for task in tasks {
        for (key, n) in task.await.expect("a caller task ran") {
            *total.entry(key).or_default() += n;
        }
    }
    total
}

/// The share of `version` among all answers.
pub fn share(counts: &BTreeMap<String, usize>, version: &str) -> f64 {
    let all: usize = counts.values().sum();
    counts.get(version).copied().unwrap_or(0) as f64 / all.max(1) as f64
}
