//! Whether a request's trace is recorded, as Envoy decides it for the OpenTelemetry tracer.

use mesh_xds::config::Fraction;

use crate::shared::TraceContext;

/// The connection manager's sampling shares, with a route's overrides applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// `client_sampling`: requests that carry `x-client-trace-id`.
    pub client: Fraction,
    /// `random_sampling`: any request.
    pub random: Fraction,
    /// `overall_sampling`: applied after the other two.
    pub overall: Fraction,
}

impl Sampling {
    /// Decides a request. An incoming `traceparent` decides alone (its `sampled` flag: the
    /// caller's decision holds for the whole trace). Otherwise a request carrying
    /// `x-client-trace-id` is traced at the client share, and any request not traced that
    /// way at the random share; then the overall share must pass as well. `random` draws
    /// uniformly over `u32`.
    pub fn decide(
        &self,
        incoming: Option<&TraceContext>,
        client_trace_id: bool,
        mut random: impl FnMut() -> u32,
    ) -> bool {
        if let Some(parent) = incoming {
            return parent.sampled;
        }
        let chosen =
            (client_trace_id && self.client.includes(random())) || self.random.includes(random());
        chosen && self.overall.includes(random())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn percent(value: u32) -> Fraction {
        Fraction {
            numerator: value * 10_000,
            denominator: 1_000_000,
        }
    }

    fn sampling(client: u32, random: u32, overall: u32) -> Sampling {
        Sampling {
            client: percent(client),
            random: percent(random),
            overall: percent(overall),
        }
    }

    #[test]
    fn an_incoming_traceparent_decides_alone() {
        let never = sampling(0, 0, 0);
        let always = sampling(100, 100, 100);
        let sampled = TraceContext::root(true);
        let unsampled = TraceContext::root(false);
        assert!(never.decide(Some(&sampled), false, || 0));
        assert!(!always.decide(Some(&unsampled), true, || 0));
    }

    #[test]
    fn without_a_parent_random_then_overall_sampling_apply() {
        // Draws below 10,000 out of a million fall in 1 %.
        let one_percent = sampling(100, 1, 100);
        assert!(one_percent.decide(None, false, || 9_999));
        assert!(!one_percent.decide(None, false, || 10_000));
        let overall_off = sampling(100, 100, 0);
        assert!(!overall_off.decide(None, false, || 0));
        assert!(!overall_off.decide(None, true, || 0));
    }

    #[test]
    fn a_client_trace_id_is_traced_at_the_client_share() {
        let client_only = sampling(100, 0, 100);
        assert!(client_only.decide(None, true, || 500_000));
        assert!(!client_only.decide(None, false, || 500_000));
    }

    #[test]
    fn random_sampling_at_one_percent_samples_about_one_request_in_a_hundred() {
        let one_percent = sampling(100, 1, 100);
        let sampled = (0..100_000)
            .filter(|_| one_percent.decide(None, false, rand::random))
            .count();
        assert!((700..1300).contains(&sampled), "{sampled} of 100,000");
    }
}
