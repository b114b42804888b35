//! `vpn-pbr-operator`: parses the command line; without a subcommand runs the operator (see
//! `app`), with one runs that tool (see `cli`).

use std::process::ExitCode;

use vpn_pbr_operator::cli::{self, Cli};
use vpn_pbr_operator::{app, telemetry};

// Only with `--features heap-profile`: dhat counts every allocation (see docs/benchmarks.md).
#[cfg(feature = "heap-profile")]
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

// mimalloc otherwise: glibc's malloc kept about a third of the operator's RSS at 10,000 routes
// in per-thread arenas and freed pages it does not return (docs/benchmarks.md, "Heap profile").
#[cfg(not(feature = "heap-profile"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's option numbers (`mi_option_e` in the v3 `mimalloc.h` libmimalloc-sys builds;
/// its Rust constants lack these two).
#[cfg(not(feature = "heap-profile"))]
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
#[cfg(not(feature = "heap-profile"))]
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Freed pages go back to the OS at once and arenas are committed as they are used: with its
/// defaults (a purge delay of 1 s, eager commit) mimalloc's peak RSS in the 10,000-route run
/// was higher than glibc's, with these lower (docs/benchmarks.md).
#[cfg(not(feature = "heap-profile"))]
fn tune_allocator() {
    // SAFETY: sets two options; mimalloc reads them when it next purges or reserves an arena.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    // Dropped when `main` returns, after the graceful SIGTERM shutdown of `app::run`; the drop
    // writes dhat-heap.json in the working directory.
    #[cfg(feature = "heap-profile")]
    let _profiler = dhat::Profiler::new_heap();
    #[cfg(not(feature = "heap-profile"))]
    tune_allocator();
    let Cli { operator, command } = cli::parse();
    // kube and reqwest both use rustls; pick the one crypto provider for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Some(command) = command {
        return cli::run(command).await;
    }
    let config = operator;
    if let Err(e) = telemetry::init(config.log_format, &config.log_level) {
        eprintln!("vpn-pbr-operator: {e}");
        return ExitCode::from(2);
    }
    match app::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exiting");
            eprintln!("vpn-pbr-operator: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(all(test, not(feature = "heap-profile")))]
mod tests {
    use super::*;

    #[test]
    fn the_heap_is_mimallocs_and_returns_freed_pages_at_once() {
        let block = Box::new([7u8; 64]);
        let at = std::ptr::from_ref(&*block).cast::<std::ffi::c_void>();
        // SAFETY: only asks whether the address lies in one of mimalloc's heap regions.
        assert!(unsafe { libmimalloc_sys::mi_is_in_heap_region(at) });
        // SAFETY: reads options.
        let get = |o| unsafe { libmimalloc_sys::mi_option_get(o) };
        // The numbers name the options meant: their documented defaults first.
        assert_eq!(
            (
                get(MI_OPTION_PURGE_DELAY),
                get(MI_OPTION_ARENA_EAGER_COMMIT)
            ),
            (1000, 2)
        );
        tune_allocator();
        assert_eq!(
            (
                get(MI_OPTION_PURGE_DELAY),
                get(MI_OPTION_ARENA_EAGER_COMMIT)
            ),
            (0, 0)
        );
    }
}
