use sluice_query_api::{QueryConfig, serve};
use sluice_runtime::{settings, shutdown, telemetry};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: QueryConfig = settings::load()?;
    // Held until the service has stopped: dropping it sends the last spans.
    let _telemetry = telemetry::init(&config.process.telemetry, env!("CARGO_BIN_NAME"))?;
    let listener = TcpListener::bind(config.listen).await?;
    let shutdown = shutdown::on_signal(config.process.lifecycle.shutdown_timeout());
    serve(config, listener, shutdown).await
}
