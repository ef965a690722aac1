"""SMS gateways behind scheduler.gateway.Gateway: console (a laptop) and Twilio."""
