//! Leaseline server.
