//! `chaos serve`: browse a store of runs in a web browser. A small axum
//! server bound to loopback only, with four pages:
//!
//! - `/` — runs newest first, coloured by verdict, filterable by anomaly
//!   (`/?anomaly=lost`), each linking its report, history, results, logs
//!   and a zip download;
//! - `/runs/<run>/<path>` — a file of a run directory (`report.html` is
//!   written on first request if the run has none), or a listing of one of
//!   its directories (`nodes/`);
//! - `/zip/<run>` — the run directory as a zip file.
//!
//! It only reads the store (apart from writing a missing report), never
//! follows a path out of a run directory, and stops by itself after its
//! lifetime.

pub mod runs;

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::markup::escape;
use crate::report;
use runs::RunEntry;

/// `chaos serve` arguments.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The store of run directories.
    #[arg(long, default_value = "store")]
    pub store: PathBuf,
    /// Port on the loopback address (0 picks a free one).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Loopback address to bind (127.0.0.0/8 or ::1 only).
    #[arg(long, default_value = "127.0.0.1")]
    pub address: IpAddr,
    /// Stop serving after this many minutes.
    #[arg(long, default_value_t = 480)]
    pub lifetime_minutes: u64,
}

/// What the handlers share.
struct Served {
    store: PathBuf,
}

/// Runs the server until its lifetime ends or Ctrl-C; prints the URL first.
pub fn run(args: &ServeArgs) -> anyhow::Result<u8> {
    if !args.address.is_loopback() {
        anyhow::bail!("--address {}: chaos serve binds loopback addresses only (127.0.0.1 or ::1)", args.address);
    }
    if !args.store.is_dir() {
        anyhow::bail!("--store {}: no such directory; pass the store that `chaos run` writes to", args.store.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(0)
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let address = SocketAddr::new(args.address, args.port);
    let listener =
        tokio::net::TcpListener::bind(address).await.with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    println!(
        "serving {} on http://{bound}/ for {} minutes (Ctrl-C stops)",
        args.store.display(),
        args.lifetime_minutes
    );
    let lifetime = Duration::from_secs(args.lifetime_minutes.saturating_mul(60));
    let served = Arc::new(Served { store: args.store.clone() });
    axum::serve(listener, router(served))
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = tokio::time::sleep(lifetime) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await
        .context("the server failed")
}

fn router(served: Arc<Served>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/runs/{run}/", get(run_root))
        .route("/runs/{run}/{*path}", get(run_file))
        .route("/zip/{run}", get(zip_run))
        .with_state(served)
}

/// `?anomaly=NAME`.
#[derive(Debug, serde::Deserialize)]
struct Filter {
    anomaly: Option<String>,
}

async fn index(State(served): State<Arc<Served>>, Query(filter): Query<Filter>) -> Response {
    let store = served.store.clone();
    let listed = tokio::task::spawn_blocking(move || runs::list(&store)).await;
    match listed {
        Ok(Ok(runs)) => Html(index_page(&served.store, &runs, filter.anomaly.as_deref())).into_response(),
        Ok(Err(error)) => failure(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot list the store: {error}")),
        Err(error) => failure(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:20px}table{border-collapse:collapse}\
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}th{background:#f3f3f3}\
tr.valid td.verdict{background:#c8ecc8}tr.invalid td.verdict{background:#f5c0bb}\
tr.unknown td.verdict{background:#f3e3a6}tr.not-checked td.verdict{background:#ddd}.filters a{margin-right:8px}";

fn index_page(store: &Path, runs: &[RunEntry], anomaly: Option<&str>) -> String {
    let mut page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>chaos runs</title>\
         <style>{STYLE}</style></head><body><h1>Runs in {}</h1>",
        escape(&store.display().to_string())
    );
    page.push_str("<p class=\"filters\">Filter by anomaly: <a href=\"/\">all runs</a>");
    for name in runs::anomaly_names(runs) {
        let _ = write!(page, "<a href=\"/?anomaly={0}\">{0}</a>", escape(&name));
    }
    page.push_str("</p>");
    let shown: Vec<&RunEntry> = runs.iter().filter(|run| anomaly.is_none_or(|a| run.has(a))).collect();
    if let Some(anomaly) = anomaly {
        let _ = write!(page, "<p>{} of {} runs found <b>{}</b>.</p>", shown.len(), runs.len(), escape(anomaly));
    }
    page.push_str(
        "<table><tr><th>run</th><th>verdict</th><th>seed</th><th>violations</th><th>allowed</th><th>files</th></tr>",
    );
    for run in shown {
        let name = escape(&run.name);
        let _ = write!(
            page,
            "<tr class=\"{}\"><td><a href=\"/runs/{name}/report.html\">{name}</a></td><td class=\"verdict\">{}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td><a href=\"/runs/{name}/report.html\">report</a> · \
             <a href=\"/runs/{name}/history.jsonl\">history</a> · <a href=\"/runs/{name}/results.json\">results</a> · \
             <a href=\"/runs/{name}/nodes/\">logs</a> · <a href=\"/zip/{name}\">zip</a></td></tr>",
            run.verdict.replace(' ', "-"),
            escape(&run.verdict),
            run.seed.map(|s| s.to_string()).unwrap_or_default(),
            escape(&run.violations.join(", ")),
            escape(&run.allowed.join(", ")),
        );
    }
    page.push_str("</table></body></html>\n");
    page
}

async fn run_root(State(served): State<Arc<Served>>, UrlPath(run): UrlPath<String>) -> Response {
    run_file(State(served), UrlPath((run, String::new()))).await
}

async fn run_file(State(served): State<Arc<Served>>, UrlPath((run, path)): UrlPath<(String, String)>) -> Response {
    let Some(run_dir) = run_dir(&served, &run) else { return not_found(&run) };
    let answer = tokio::task::spawn_blocking(move || file_response(&run_dir, &run, &path)).await;
    answer.unwrap_or_else(|error| failure(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()))
}

/// The run directory named `run`, if it is one of the store's.
fn run_dir(served: &Served, run: &str) -> Option<PathBuf> {
    let dir = served.store.join(run);
    (runs::valid_run_name(run) && dir.is_dir()).then_some(dir)
}

fn file_response(run_dir: &Path, run: &str, path: &str) -> Response {
    let relative = path.trim_end_matches('/');
    if relative == report::REPORT_FILE && !run_dir.join(report::REPORT_FILE).is_file() {
        if let Err(error) = report::write(run_dir) {
            return failure(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string());
        }
    }
    let Some(target) = runs::resolve(run_dir, relative) else { return not_found(&format!("{run}/{path}")) };
    if target.is_dir() {
        return listing(&target, run, relative);
    }
    match std::fs::read(&target) {
        Ok(bytes) => ([(header::CONTENT_TYPE, content_type(&target))], bytes).into_response(),
        Err(error) => failure(StatusCode::INTERNAL_SERVER_ERROR, &format!("{}: {error}", target.display())),
    }
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("xml") => "application/xml",
        _ => "text/plain; charset=utf-8",
    }
}

/// A directory of a run, as links.
fn listing(dir: &Path, run: &str, relative: &str) -> Response {
    let Ok(entries) = std::fs::read_dir(dir) else { return not_found(relative) };
    let mut names: Vec<(String, bool)> =
        entries.flatten().map(|e| (e.file_name().to_string_lossy().into_owned(), e.path().is_dir())).collect();
    names.sort();
    let base = if relative.is_empty() { format!("/runs/{run}/") } else { format!("/runs/{run}/{relative}/") };
    let mut page = format!(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{0}</title></head><body>\
         <h1>{0}</h1><p><a href=\"/\">all runs</a></p><ul>",
        escape(&base)
    );
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        let _ = write!(page, "<li><a href=\"{0}{1}{slash}\">{1}{slash}</a></li>", escape(&base), escape(&name));
    }
    page.push_str("</ul></body></html>\n");
    Html(page).into_response()
}

async fn zip_run(State(served): State<Arc<Served>>, UrlPath(run): UrlPath<String>) -> Response {
    let Some(run_dir) = run_dir(&served, &run) else { return not_found(&run) };
    let zipped = tokio::task::spawn_blocking(move || zip_dir(&run_dir)).await;
    match zipped {
        Ok(Ok(bytes)) => {
            let disposition = format!("attachment; filename=\"{run}.zip\"");
            ([(header::CONTENT_TYPE, "application/zip".to_string()), (header::CONTENT_DISPOSITION, disposition)], bytes)
                .into_response()
        }
        Ok(Err(error)) => failure(StatusCode::INTERNAL_SERVER_ERROR, &format!("cannot zip {run}: {error}")),
        Err(error) => failure(StatusCode::INTERNAL_SERVER_ERROR, &error.to_string()),
    }
}

/// Every regular file under `dir` (symlinks and sockets left out), in a
/// zip whose paths start with the run's name.
pub fn zip_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "run".into());
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&current)?.collect::<Result<_, _>>()?;
        entries.sort_by_key(|entry| entry.file_name());
        for entry in entries {
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                let inside = entry.path().strip_prefix(dir).map(Path::to_path_buf).unwrap_or_default();
                writer.start_file(format!("{name}/{}", inside.display()), options).map_err(std::io::Error::other)?;
                writer.write_all(&std::fs::read(entry.path())?)?;
            }
        }
    }
    Ok(writer.finish().map_err(std::io::Error::other)?.into_inner())
}

fn not_found(what: &str) -> Response {
    failure(StatusCode::NOT_FOUND, &format!("{what}: no such run or file in this store"))
}

fn failure(status: StatusCode, message: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], format!("{message}\n")).into_response()
}
