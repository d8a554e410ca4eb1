//! The `amani` binary: parse the command line, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    return_large_allocations_to_the_system();
    amani::cli::run(amani::cli::Cli::parse())
}

/// glibc serves an allocation from `mmap` only above a threshold that it
/// raises, by default, to the size of every large block freed — so after
/// the first Argon2 hash its 19 MiB buffers come from per-thread heaps and
/// are never given back. Measured with 128 concurrent logins on the debug
/// build: resident memory went 47 → 398 MiB and stayed there. A fixed 1 MiB
/// threshold makes every such buffer an `mmap` that `free` returns at once
/// (numbers in bench/README.md).
fn return_large_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; it is called before
    // any thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024);
    }
}
