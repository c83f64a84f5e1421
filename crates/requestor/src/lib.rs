//! Leaseline requestor side.
