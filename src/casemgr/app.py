"""The officer-facing application: routes, lifespan, error mapping, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

import structlog
from litestar import Litestar, Router
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from casemgr.accounts.controllers import AccountController
from casemgr.alerts import service as alerts_service
from casemgr.alerts.controllers import AlertController
from casemgr.audit.controllers import AuditController
from casemgr.auth.controllers import AuthController
from casemgr.cases.controllers import CaseController
from casemgr.clock import Clock
from casemgr.collector import collect_periodically
from casemgr.config import Settings
from casemgr.enforcement.controllers import EnforcementController
from casemgr.handovers.controllers import HandoverController, TransferController
from casemgr.monitoring.controllers import DeviceController, MonitoringOrderController
from casemgr.notifications import service as notifications
from casemgr.notifications.controllers import NotificationController
from casemgr.notifications.sms import sms_sender
from casemgr.orgunits.controllers import OrgUnitController
from casemgr.people.controllers import PersonController
from casemgr.records.controllers import CaseRecordsController, RecordController
from casemgr.resources import Resources
from casemgr.statistics.controllers import StatisticsController
from casemgr.supervision import engine as task_engine
from casemgr.supervision.controllers import ContactController, ContactPlanController, TaskController
from casemgr.web import health
from casemgr.web.access import access_guard, public
from casemgr.web.middleware import request_id_middleware
from casemgr.web.problems import EXCEPTION_HANDLERS, audit_denial

log = structlog.get_logger(__name__)


def create_app(
    settings: Settings, *, resources: Resources | None = None, clock: Clock | None = None
) -> Litestar:
    """Build the application.

    With ``resources`` given (tests), the app uses them and leaves their life to the caller;
    otherwise its lifespan opens them at start-up and closes them at shutdown, after the
    server has finished the requests in flight.
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if resources is not None:
            app.state.resources = resources
            yield
            return
        opened = await Resources.open(settings, clock)
        app.state.resources = opened
        engine: asyncio.Task[None] | None = None
        if settings.task_engine_interval_seconds > 0:
            engine = asyncio.create_task(
                task_engine.run_forever(
                    opened.pool,
                    opened.clock,
                    every=timedelta(seconds=settings.task_engine_interval_seconds),
                    escalate_after=timedelta(hours=settings.task_escalate_after_hours),
                )
            )
        outbox: asyncio.Task[None] | None = None
        if settings.tracking_outbox_interval_seconds > 0:
            outbox = asyncio.create_task(
                opened.tracking.run_outbox_forever(
                    opened.pool,
                    opened.clock,
                    every=timedelta(seconds=settings.tracking_outbox_interval_seconds),
                )
            )
        escalation: asyncio.Task[None] | None = None
        if settings.alert_escalation_interval_seconds > 0:
            escalation = asyncio.create_task(
                alerts_service.run_escalation_forever(
                    opened.pool,
                    opened.clock,
                    every=timedelta(seconds=settings.alert_escalation_interval_seconds),
                )
            )
        notifier: asyncio.Task[None] | None = None
        if settings.notification_interval_seconds > 0:
            notifier = asyncio.create_task(
                notifications.run_forever(
                    opened.pool,
                    opened.keyring,
                    sms_sender(settings),
                    opened.clock,
                    every=timedelta(seconds=settings.notification_interval_seconds),
                )
            )
        collector = asyncio.create_task(collect_periodically())
        log.info("service_started", env=settings.env, mfa_required=settings.mfa_required)
        try:
            yield
        finally:
            for task in (engine, outbox, escalation, notifier, collector):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            await opened.close()
            log.info("service_stopped", detail="pools closed")

    app = Litestar(
        route_handlers=[
            health.live,
            health.ready,
            AuthController,
            OrgUnitController,
            AccountController,
            PersonController,
            CaseController,
            ContactPlanController,
            ContactController,
            TaskController,
            HandoverController,
            TransferController,
            CaseRecordsController,
            RecordController,
            AlertController,
            MonitoringOrderController,
            DeviceController,
            EnforcementController,
            NotificationController,
            StatisticsController,
            AuditController,
        ],
        lifespan=[lifespan],
        guards=[access_guard],
        middleware=[request_id_middleware],
        exception_handlers=EXCEPTION_HANDLERS,
        after_exception=[audit_denial],
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="casemgr",
            version="0.1.0",
            # The schema describes routes, not data: it is public.
            openapi_router=Router(path="/schema", route_handlers=[], opt=public("openapi.read")),
            description="Case management for a city justice bureau.",
            render_plugins=[JsonRenderPlugin()],
        ),
        # Logging is ours (casemgr.logs); Litestar's default config would replace it.
        logging_config=None,
        debug=False,
    )
    if resources is not None:
        app.state.resources = resources
    return app
