//! Hostile inputs: panicking callbacks and inner services, epochs held across wraps, floods
//! of hosts, credentials in URIs.
