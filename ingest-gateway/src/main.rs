use sluice_ingest_gateway::{GatewayConfig, serve};
use sluice_runtime::{settings, shutdown, telemetry};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: GatewayConfig = settings::load()?;
    telemetry::init(&config.telemetry);
    let listener = TcpListener::bind(config.listen).await?;
    let shutdown = shutdown::on_signal(config.lifecycle.shutdown_timeout());
    serve(config, listener, shutdown).await
}
