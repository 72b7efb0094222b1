//! The testkit's own tests: every fault really happens, on the socket and in process.

mod fault_layer;
mod in_process;
mod plans;
mod socket;
mod support;
