"""MQTT / Home Assistant: the door's events and state on a broker, and remote unlock.

An adapter beside the daemon, never in its way: the event log is the source of truth, and a
background thread publishes from it (:mod:`~pi_facegate.mqtt.publisher`), so the frame loop
never waits for the network. Topic names and payloads (:mod:`~pi_facegate.mqtt.topics`) and
Home Assistant's discovery configs (:mod:`~pi_facegate.mqtt.discovery`) are pure functions;
the publisher's place in the log is :mod:`~pi_facegate.mqtt.cursor`; an UNLOCK command
becomes a request the frame loop takes (:mod:`~pi_facegate.mqtt.remote`).
"""
