//! How the services use memory.
//!
//! The services allocate with mimalloc, which asks the kernel for transparent huge pages on its
//! arenas (`madvise(MADV_HUGEPAGE)`) and hands freed pages back after a delay. Each later touch
//! of a page it handed back then faults in, and zeroes, a whole 2 MiB page. On the event path
//! that churn cost the record service about 2 µs of CPU per event stored (6.6 against 4.6, `make
//! bench`'s store ingest, 7 December 2026), in the kernel's page clearing. The services
//! therefore turn transparent huge pages off for their own process (the machine's setting is
//! left alone), as mimalloc's `MIMALLOC_ALLOW_THP=0` would.

/// Turns transparent huge pages off for this process (Linux; elsewhere nothing to do).
pub fn no_transparent_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(target_os = "linux")]
    fn turns_huge_pages_off_for_the_process() {
        super::no_transparent_huge_pages().expect("prctl");
        assert!(rustix::thread::transparent_huge_pages_are_disabled().expect("prctl"));
    }
}
