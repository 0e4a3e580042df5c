//! `workflow serve`: the HTTP API and the dashboard on the database file.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use replayflow::Runtime;
use replayflow::http::{HttpConfig, router};
use tracing_subscriber::EnvFilter;

use crate::Failure;
use crate::args::ServeArgs;

fn config(args: &ServeArgs, addr: SocketAddr) -> HttpConfig {
    let mut config = HttpConfig::for_addr(addr)
        .read_only(args.read_only)
        .max_body_bytes(args.max_body_bytes);
    if let Some(token) = &args.token {
        config = config.token(token.clone());
    }
    for host in &args.allowed_hosts {
        config = config.allow_host(host.clone());
    }
    for origin in &args.allowed_origins {
        config = config.allow_origin(origin.clone());
    }
    config
}

/// Where `--bind` points: every address its host resolves to, and the
/// host name when it is one (not an IP address).
pub(crate) struct Bind {
    addrs: Vec<SocketAddr>,
    name: Option<String>,
}

/// Resolves `--bind` (`IP:PORT` or `HOST:PORT`) and refuses an unsafe
/// configuration before the database is opened: a name that resolves to
/// any non-loopback address needs a token, as such an address does.
pub(crate) async fn check_args(args: &ServeArgs) -> Result<Bind, Failure> {
    let text = args.bind.trim();
    let bind = match text.parse::<SocketAddr>() {
        Ok(addr) => Bind {
            addrs: vec![addr],
            name: None,
        },
        Err(_) => {
            let (host, port) = text.rsplit_once(':').ok_or_else(|| {
                format!("--bind `{text}`: expected IP:PORT or HOST:PORT, such as localhost:8080")
            })?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(Failure(format!(
                    "--bind `{text}`: expected IP:PORT or HOST:PORT, such as localhost:8080"
                )));
            }
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host(text)
                .await
                .map_err(|e| format!("--bind `{text}`: cannot resolve `{host}`: {e}"))?
                .collect();
            if addrs.is_empty() {
                return Err(Failure(format!(
                    "--bind `{text}`: `{host}` resolves to no address"
                )));
            }
            Bind {
                addrs,
                name: Some(host.trim_matches(['[', ']']).to_ascii_lowercase()),
            }
        }
    };
    check_bind(args, text, &bind)?;
    Ok(bind)
}

/// Every address of `bind` must be safe: one non-loopback address among
/// those a name resolves to needs a token as much as a single one does.
fn check_bind(args: &ServeArgs, text: &str, bind: &Bind) -> Result<(), Failure> {
    for addr in &bind.addrs {
        config(args, *addr)
            .check_bind(*addr)
            .map_err(|e| match &bind.name {
                Some(name) => Failure(format!("--bind `{text}` ({name} is {addr}): {e}")),
                None => Failure(e.to_string()),
            })?;
    }
    Ok(())
}

pub(crate) async fn run(
    rt: Runtime,
    db: &Path,
    args: &ServeArgs,
    bind: &Bind,
) -> Result<ExitCode, Failure> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();

    // The first address that binds, as `TcpListener::bind` does with a name.
    let listener = tokio::net::TcpListener::bind(bind.addrs.as_slice())
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.bind.trim()))?;
    let addr = listener.local_addr()?;
    let mut config = config(args, addr);
    if let Some(name) = &bind.name {
        // The name the server was given is the one its users type.
        config = config.allow_host(format!("{name}:{}", addr.port()));
    }
    let app = router(rt, config);

    let shown = if let Some(name) = &bind.name {
        format!("http://{name}:{}/", addr.port())
    } else if addr.ip().is_unspecified() {
        format!("http://localhost:{}/", addr.port())
    } else {
        format!("http://{addr}/")
    };
    // A closed stdout must not stop the server: these lines are a courtesy.
    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "workflow dashboard of {} on {shown}",
        crate::format::escape(&db.display().to_string())
    );
    let _ = writeln!(
        out,
        "listening on {addr}{}{}; actions are recorded for the application that runs the workflows",
        if args.token.is_some() {
            ", bearer token required"
        } else {
            ""
        },
        if args.read_only { ", read-only" } else { "" },
    );
    let _ = writeln!(out, "press Ctrl-C to stop");
    let _ = out.flush();

    axum::serve(crate::listener::JsonErrorsListener(listener), app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("the server stopped: {e}"))?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn serve_args(extra: &[&str]) -> ServeArgs {
        let mut argv = vec!["replayflow", "serve"];
        argv.extend_from_slice(extra);
        match crate::args::Cli::parse_from(argv).command {
            crate::args::Command::Serve(args) => args,
            other => panic!("not serve: {other:?}"),
        }
    }

    fn named(addrs: &[&str]) -> Bind {
        Bind {
            addrs: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            name: Some("box".into()),
        }
    }

    #[test]
    fn a_name_with_any_non_loopback_address_needs_a_token() {
        let args = serve_args(&[]);
        assert!(check_bind(&args, "box:80", &named(&["127.0.0.1:80", "[::1]:80"])).is_ok());
        let Err(Failure(message)) =
            check_bind(&args, "box:80", &named(&["127.0.0.1:80", "10.1.2.3:80"]))
        else {
            panic!("a non-loopback address was accepted without a token");
        };
        assert!(message.contains("box is 10.1.2.3:80"), "{message}");
        assert!(message.contains("needs a bearer token"), "{message}");
        let args = serve_args(&["--token", "s3cret"]);
        assert!(check_bind(&args, "box:80", &named(&["10.1.2.3:80"])).is_ok());
    }

    #[tokio::test]
    async fn resolves_host_names() {
        let bind = check_args(&serve_args(&["--bind", "localhost:8080"]))
            .await
            .unwrap_or_else(|Failure(e)| panic!("{e}"));
        assert!(
            bind.addrs
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080)
        );
        assert_eq!(bind.name.as_deref(), Some("localhost"));
        for bad in [
            "localhost",
            "localhost:http",
            ":8080",
            "no-such-host.invalid:8080",
        ] {
            assert!(
                check_args(&serve_args(&["--bind", bad])).await.is_err(),
                "{bad}"
            );
        }
    }
}
