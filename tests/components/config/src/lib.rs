//! `config`: answers with the values the host gives it through
//! `wasi:config/store`, so tests can check per-workload configuration.

use wasi::exports::http::incoming_handler::Guest;
use wasi::http::types::{IncomingRequest, ResponseOutparam};

/// `wasi:config/store`, generated in a module of its own: its root module is
/// also called `wasi`.
mod bindings {
    wit_bindgen::generate!({
        world: "guest",
        path: "wit",
        generate_all,
    });
}

use bindings::wasi::config::store;

struct Config;

impl Guest for Config {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let text = [("content-type", "text/plain")];
        match guest_support::query::param(&path, "key") {
            Some(key) => match store::get(&key) {
                Ok(Some(value)) => guest_support::response::send(out, 200, &text, value.as_bytes()),
                Ok(None) => {
                    guest_support::response::text(out, 404, &format!("no value for {key}\n"))
                }
                Err(error) => guest_support::response::text(out, 500, &format!("{error:?}\n")),
            },
            None => match store::get_all() {
                Ok(mut values) => {
                    values.sort();
                    let body: String = values
                        .iter()
                        .map(|(key, value)| format!("{key}={value}\n"))
                        .collect();
                    guest_support::response::send(out, 200, &text, body.as_bytes());
                }
                Err(error) => guest_support::response::text(out, 500, &format!("{error:?}\n")),
            },
        }
    }
}

wasi::http::proxy::export!(Config);
