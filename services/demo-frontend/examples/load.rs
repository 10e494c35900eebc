//! Steady load through a frontend, for the README's main job: calls Greet from a few tasks until
//! SIGTERM/SIGINT, prints one line per second (calls, share of each greeter version, failures),
//! and a total at the end.
//!
//! `load FRONTEND_URL [CONCURRENCY]`

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use flotilla_proto::demo::frontend::v1::{GreetRequest, frontend_client::FrontendClient};

type Tally = BTreeMap<String, u64>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, concurrency) = match args.as_slice() {
        [url] => (url.clone(), 4),
        [url, n] => (url.clone(), n.parse().context("CONCURRENCY is a number")?),
        _ => anyhow::bail!("usage: load FRONTEND_URL [CONCURRENCY]"),
    };
    let client = FrontendClient::connect(url.clone())
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let second: Arc<Mutex<Tally>> = Arc::default();
    for _ in 0..concurrency {
        let (mut client, second) = (client.clone(), second.clone());
        tokio::spawn(async move {
            loop {
                let key = match client
                    .greet(GreetRequest {
                        name: "load".into(),
                        locale: String::new(),
                    })
                    .await
                {
                    Ok(reply) => reply.into_inner().greeter_version,
                    Err(status) => format!("failed {:?}", status.code()),
                };
                *second.lock().expect("not poisoned").entry(key).or_default() += 1;
                // Steady rather than flat out: the whole suite shares the machine.
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
    }

    let started = Instant::now();
    let mut total = Tally::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let stop = flotilla_server::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            _ = tick.tick() => {}
        }
        let this_second = std::mem::take(&mut *second.lock().expect("not poisoned"));
        for (key, n) in &this_second {
            *total.entry(key.clone()).or_default() += n;
        }
        println!(
            "t={:>3}s {}",
            started.elapsed().as_secs(),
            describe(&this_second)
        );
    }
    println!("total {}", describe(&total));
    Ok(())
}

/// `412 calls: 1.0.0 80.1%, 1.1.0 19.9%; 0 failed`
fn describe(tally: &Tally) -> String {
    let calls: u64 = tally.values().sum();
    let failed: u64 = tally
        .iter()
        .filter(|(k, _)| k.starts_with("failed"))
        .map(|(_, n)| n)
        .sum();
    let shares: Vec<String> = tally
        .iter()
        .filter(|(k, _)| !k.starts_with("failed"))
        .map(|(version, n)| format!("{version} {:.1}%", 100.0 * *n as f64 / calls.max(1) as f64))
        .collect();
    format!("{calls} calls: {}; {failed} failed", shares.join(", "))
}
