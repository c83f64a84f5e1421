//! The test battery every LeaseStore backend must pass.
