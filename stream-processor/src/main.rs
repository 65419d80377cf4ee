use sluice_runtime::{settings, shutdown, telemetry};
use sluice_stream_processor::{ProcessorConfig, serve};
use tokio::net::TcpListener;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config: ProcessorConfig = settings::load()?;
    telemetry::init(&config.telemetry);
    let listener = TcpListener::bind(config.listen).await?;
    serve(config, listener, shutdown::on_signal()).await
}
