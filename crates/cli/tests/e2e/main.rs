//! Leaseline's end-to-end tests: one test binary, one module per area
//! (`cargo test -p leaseline --test e2e MODULE` runs one, e.g.
//! `cargo test -p leaseline --test e2e instances_postgres`).
//!
//! The modules run concurrently (libtest's threads), so nothing they share
//! on the host may be fixed per module: relay addresses on the host's
//! loopback come from [`leaseline_test_support::loopback_relay`], ports from
//! `free_udp_port` / `free_tcp_port`, network namespaces have names unique
//! in the binary, and the few tests that need the host to themselves (UDP
//! port 67 on 127.0.0.1, thread priorities, throughput under load) take
//! [`leaseline_test_support::exclusive`].
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed unwrap is a failed test

// Support shared by several modules, declared once.
mod active_support;
mod attack_support;
mod bulk_support;
mod crash_support;
mod http_support;
mod lq_udp_common;
mod mirror_support;
mod tls_common;

mod active_backpressure;
mod active_catchup;
mod active_churn;
mod active_protocol;
mod active_resume;
mod active_tshark;
mod attack_suite;
mod bulk_connection;
mod bulk_queries;
mod bulk_tshark;
mod crash_durability;
mod db_upgrade;
mod dhcp_bad_datagrams;
mod dhcp_crash_kill9;
mod dhcp_netns_dhclient;
mod dhcp_perfdhcp;
mod http_control;
mod http_control_commands;
mod http_metrics;
mod http_metrics_churn;
mod http_tls;
mod import_config;
mod import_leases;
mod import_postgres;
mod instances_kill9;
mod instances_postgres;
mod lease_history;
mod live_reload;
mod live_reload_churn;
mod live_reload_tls;
mod log_events;
mod lq_connection_limits;
mod lq_grant_times;
mod lq_udp_cli;
mod lq_udp_dhcpd;
mod lq_udp_leaseline;
mod lq_udp_malformed;
mod lq_udp_perfdhcp;
mod lq_udp_tshark;
mod mirror_churn;
mod mirror_query;
mod mirror_resume;
mod postgres_restart;
mod serve_postgres;
mod serve_thread_priority;
mod store_wal_bound;
mod systemd_notify;
mod systemd_unit;
mod tls_connection_refused;
mod tls_example_config;
mod tls_secure_mode;
mod watch_failover;
mod web_ui;
mod web_ui_backpressure;
