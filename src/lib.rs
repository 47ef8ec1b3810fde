//! rotagate rotates signing keys and secrets from CI.
//!
//! Each run advances every credential's rotation as far as its gates allow, saving an
//! age-encrypted, MAC-chained state after every step, and stops. The pieces:
//! [`config`] (rotagate.yaml), [`material`] (generators), [`pipeline`] (stages, journal,
//! engine), [`state`] (encrypted state, stores, leases), [`step`] (what steps share:
//! templates' view, requests, programs, clients), [`actions`] and [`probes`] (one
//! file per kind behind one trait each), [`gate`] (approvals), [`ci`] (GitHub Actions).

pub mod actions;
pub mod app;
pub mod aws;
pub mod ci;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod gate;
pub mod github;
pub mod hashicorp;
pub mod http;
pub mod inventory;
pub mod kubernetes;
pub mod logging;
pub mod material;
pub mod notify;
pub mod pipeline;
pub mod postgres;
pub mod probes;
pub mod secret;
pub mod state;
pub mod step;
pub mod vercel;
