//! The `tessera` binary. Its allocator is mimalloc: a request allocates and
//! frees dozens of small buffers, often on different threads (the store's
//! writer frees what a worker allocated), where glibc's malloc spent about
//! a tenth of the server's CPU under load (README, Performance).

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tessera::cli::main()
}
