"""Insight for creators: behaviour events, analytics, churn risk, recommendations, privacy.

Same layer as ``paywall`` (it reads the paywall's and the chat's tables); imports
``paywall`` and ``core`` only; nothing below it imports it. The edges report events
through ``core.behaviour.BehaviourSink``.
"""
