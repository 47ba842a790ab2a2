"""The local broker: runs ``eventing/*.yaml`` (Broker, Triggers, PingSource) as Knative does.

In memory, like Knative's InMemoryChannel: queued events do not survive a restart.
Durability comes from the job store and the sweep.
"""

from t2v.broker.config import (
    BackoffPolicy,
    BrokerConfig,
    BrokerConfigError,
    BrokerSpec,
    DeliverySpec,
    Destination,
    PingSourceSpec,
    TriggerSpec,
    load_config,
    resolve_destination,
)
from t2v.broker.delivery import DeliveryOverride, RetryPolicy, is_retryable
from t2v.broker.ping import run_ping_sources
from t2v.broker.routing import LocalBroker, Route, resolve_routes
from t2v.broker.server import create_broker, create_broker_app

__all__ = [
    "BackoffPolicy",
    "BrokerConfig",
    "BrokerConfigError",
    "BrokerSpec",
    "DeliveryOverride",
    "DeliverySpec",
    "Destination",
    "LocalBroker",
    "PingSourceSpec",
    "RetryPolicy",
    "Route",
    "TriggerSpec",
    "create_broker",
    "create_broker_app",
    "is_retryable",
    "load_config",
    "resolve_destination",
    "resolve_routes",
    "run_ping_sources",
]
