//! The `tessera` binary. Its allocator is mimalloc: a request allocates and
//! frees dozens of small buffers, often on different threads (the store's
//! writer frees what a worker allocated), where glibc's malloc spent about
//! a tenth of the server's CPU under load (README, Performance).
//!
//! Transparent huge pages are turned off for the process: mimalloc asks for
//! them on its arenas, and each first touch of a 2 MiB region then has the
//! kernel zero all of it, most of which a small, growing heap (the
//! revocation list under a wave of revocations) never uses — a tenth of
//! the server's CPU in the revocation benchmark, and a latency spike on
//! the request that takes the fault.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE only sets a flag on this process's memory
    // map; it takes no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
    tessera::cli::main()
}
