//! One active ingest per protocol across replicas. Every replica runs [`lead`]; the one that
//! takes the protocol's advisory lock (on a dedicated connection, [`db::LeaderConn`]) becomes
//! the leader, takes the next epoch of the protocol's writer fence in the shared store and
//! ingests through a store fenced at that epoch; the others poll for the lock every
//! [`POLL`]. The leader checks its lock connection every [`POLL`]: when it is gone (the
//! database restarted, the network cut it, the server killed it) it stops ingesting and
//! becomes a spare again. Between the moment the lock is lost and the moment the pipeline stops,
//! its commits are refused by the fence as soon as another replica has taken a newer epoch,
//! so a deposed leader never writes after its successor has begun.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::LeaderConn;

/// How often a spare asks for the lock and a leader checks it still holds it.
pub const POLL: Duration = Duration::from_secs(1);

/// The lock and fence name of a protocol's ingest.
pub fn name(protocol: &str) -> String {
    format!("kamiyo-ingest:{protocol}")
}

/// Runs `work` whenever this replica leads `protocol`'s ingest, until `shutdown`: `work`
/// gets the fence epoch it must commit at and a token cancelled when the leadership is lost
/// (or at shutdown), and must return once that token is cancelled. `holder` names this replica
/// (its lock connection's `application_name`).
pub async fn lead<F, Fut>(
    url: &str,
    protocol: &str,
    holder: &str,
    store: &kamiyo_store::Store,
    shutdown: CancellationToken,
    mut work: F,
) -> anyhow::Result<()>
where
    F: FnMut(i64, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let lock = name(protocol);
    while !shutdown.is_cancelled() {
        let mut conn = match LeaderConn::connect(url, holder).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "leadership connection failed; retrying");
                sleep_or(&shutdown, POLL * 5).await;
                continue;
            }
        };
        // A spare: ask for the lock until it is ours.
        let got = loop {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            match conn.try_lock(&lock).await {
                Ok(true) => break true,
                Ok(false) => sleep_or(&shutdown, POLL).await,
                Err(e) => {
                    tracing::warn!(error = %e, "asking for the ingest lock failed; reconnecting");
                    break false;
                }
            }
        };
        if !got {
            continue;
        }
        let epoch = match store.advance_fence(&lock).await {
            Ok(e) => e,
            Err(e) => {
                // Dropping the connection gives the lock back; another replica may lead.
                tracing::warn!(error = %e, "taking the writer fence failed; giving the lead back");
                drop(conn);
                sleep_or(&shutdown, POLL * 5).await;
                continue;
            }
        };
        tracing::info!(protocol, epoch, holder, "leading the ingest");
        let stop = shutdown.child_token();
        // The watchdog: the lock is held while its connection answers.
        let watch = {
            let stop = stop.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(POLL) => {}
                    }
                    if !conn.alive(POLL * 2).await {
                        tracing::error!(
                            "the ingest lock's connection is gone: leadership lost; stopping"
                        );
                        stop.cancel();
                        return;
                    }
                }
            })
        };
        let result = work(epoch, stop.clone()).await;
        stop.cancel();
        let _ = watch.await;
        match result {
            Ok(()) if shutdown.is_cancelled() => return Ok(()),
            Ok(()) => tracing::warn!(protocol, epoch, "ingest stopped; waiting to lead again"),
            Err(e) => {
                tracing::error!(protocol, epoch, error = %e, "ingest failed; waiting to lead again");
            }
        }
        sleep_or(&shutdown, POLL).await;
    }
    Ok(())
}

async fn sleep_or(shutdown: &CancellationToken, d: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(d) => {}
    }
}
