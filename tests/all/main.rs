//! One integration test binary (fast to link); modules by concern.

#[path = "../support/mod.rs"]
mod support;

mod actions;
mod age;
mod aws;
mod cli;
mod config;
mod crash;
mod engine;
mod examples;
mod fleet;
mod fuzz;
mod github;
mod http;
mod hygiene;
mod kubernetes;
mod material;
mod minted;
mod openapi;
mod postgres;
mod snapshots;
mod state;
mod vault;
mod vercel;
mod webhook;
