//! `wasi:http/client.send` for `wasi:http@0.3` components, wrapped so an
//! outbound request joins the trace of the inbound request it was made for.
//!
//! A P3 instance serves several requests at once, so the store cannot hold
//! "the" request being served the way a P2 store does. The component model
//! knows better: every host call runs under the guest task that made it, and
//! the root of that task's call stack is the `handle` call the host started
//! for one inbound request ([`super::p3`] records each one's trace by task).
//! The wrapper looks the trace up by that root task and hands it to the egress
//! hook, then calls wasmtime-wasi-http's own `send`.

use std::pin::pin;
use std::task::Poll;

use wasmtime::AsContextMut;
use wasmtime::component::{Accessor, Linker, Resource};
use wasmtime_wasi_http::p3::bindings::http::client::HostWithStore;
use wasmtime_wasi_http::p3::bindings::http::types::{ErrorCode, Host as _, Request, Response};
use wasmtime_wasi_http::{WasiHttp, WasiHttpView};

use super::store::StoreState;

/// The interface whose `send` is replaced (the WASI 0.3.0 that wasmtime 48 binds).
const CLIENT: &str = "wasi:http/client@0.3.0";

/// Replaces the `send` that `wasmtime_wasi_http::p3::add_to_linker` defined in
/// `linker` with one that carries the calling request's trace.
pub(super) fn add_traced_send(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    linker
        .instance(CLIENT)?
        .func_wrap_concurrent("send", |accessor, (request,)| {
            Box::pin(traced_send(accessor, request))
        })?;
    linker.allow_shadowing(false);
    Ok(())
}

async fn traced_send(
    accessor: &Accessor<StoreState>,
    request: Resource<Request>,
) -> wasmtime::Result<(Result<Resource<Response>, ErrorCode>,)> {
    accessor.with(|mut access| {
        // On this first poll the host call still runs under its caller's task.
        let root = access
            .as_context_mut()
            .async_call_stack()
            .ok()
            .and_then(Iterator::last);
        access.data_mut().send_for_task(root);
    });
    let http = accessor.with_getter::<WasiHttp>(StoreState::http);
    let mut send = pin!(<WasiHttp as HostWithStore<StoreState>>::send(
        &http, request
    ));
    // The hook takes the trace during `send`'s first poll; clearing it then
    // keeps it off any later request a `wasi:http@0.2` import of the same
    // component makes, which cannot say which task it belongs to.
    let first = futures::poll!(send.as_mut());
    accessor.with(|mut access| access.data_mut().send_for_task(None));
    let sent = match first {
        Poll::Ready(sent) => sent,
        Poll::Pending => send.await,
    };
    Ok((match sent {
        Ok(response) => Ok(response),
        Err(error) => Err(http.with(|mut access| access.get().convert_error_code(error))?),
    },))
}
