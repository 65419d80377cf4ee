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
    serve(config, listener, shutdown::on_signal()).await
}
