//! The tokio runtime the edge and registrar binaries run on.

/// A runtime with `threads` worker threads; 0 or 1 gives a single-threaded runtime.
///
/// One thread is the binaries' default. On the 2-core bench machine the registrar took
/// 0.19-0.25 CPU s per 1,000 registrations on it against 0.26 on tokio's multi-threaded
/// scheduler, whose workers spent a quarter of their samples waking and parking each
/// other. More threads spread a process over more cores.
pub fn build(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

#[cfg(test)]
mod tests {
    use super::build;

    #[test]
    fn one_thread_or_none_is_a_single_threaded_runtime() {
        for threads in [0, 1] {
            let runtime = build(threads).expect("runtime");
            assert_eq!(runtime.metrics().num_workers(), 1, "{threads} threads");
        }
    }

    #[test]
    fn more_threads_give_that_many_workers() {
        let runtime = build(3).expect("runtime");
        assert_eq!(runtime.metrics().num_workers(), 3);
    }
}
