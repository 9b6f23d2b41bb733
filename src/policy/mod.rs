//! Policy checked at the API edge before anything is stored or dialled: who may be dialled
//! ([`dial`]), where callbacks may go ([`hosts`]), and how fast one client may ask ([`rate`]).
//! Plain data and functions; time is an argument.

pub mod dial;
pub mod hosts;
pub mod rate;

pub use dial::{DialPolicy, DIAL_ALLOW_KEY};
pub use hosts::{HostPolicy, ALLOW_HOSTS_KEY};
pub use rate::{Admit, RateLimiter};
