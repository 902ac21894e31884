//! xDS client and configuration translation.
