"""The officer-facing application: routes, lifespan, error mapping, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from litestar import Litestar, Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from casemgr.accounts.controllers import AccountController
from casemgr.alerts import service as alerts_service
from casemgr.alerts.controllers import AlertController
from casemgr.audit.controllers import AuditController
from casemgr.auth.controllers import AuthController
from casemgr.cases.controllers import CaseController
from casemgr.clock import Clock
from casemgr.collector import collect_periodically
from casemgr.config import Settings
from casemgr.console.controllers import ConsoleController
from casemgr.console.orders import ConsoleMonitoringController
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
CONSOLE = Path(__file__).resolve().parent / "console"


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
        # The background loops of each worker, by interval in seconds (0 turns one off).
        loops: list[tuple[int, Callable[[timedelta], Coroutine[Any, Any, None]]]] = [
            (
                settings.task_engine_interval_seconds,
                lambda every: task_engine.run_forever(
                    opened.pool,
                    opened.clock,
                    every=every,
                    escalate_after=timedelta(hours=settings.task_escalate_after_hours),
                ),
            ),
            (
                settings.tracking_outbox_interval_seconds,
                lambda every: opened.tracking.run_outbox_forever(opened.pool, opened.clock, every=every),
            ),
            (
                settings.alert_escalation_interval_seconds,
                lambda every: alerts_service.run_escalation_forever(opened.pool, opened.clock, every=every),
            ),
            (
                settings.notification_interval_seconds,
                lambda every: notifications.run_forever(
                    opened.pool, opened.keyring, sms_sender(settings), opened.clock, every=every
                ),
            ),
        ]
        tasks = [asyncio.create_task(run(timedelta(seconds=s))) for s, run in loops if s > 0]
        tasks.append(asyncio.create_task(collect_periodically()))
        log.info("service_started", env=settings.env, mfa_required=settings.mfa_required)
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await opened.close()
            log.info("service_stopped", detail="pools closed")

    app = Litestar(
        route_handlers=[
            health.live,
            health.ready,
            ConsoleController,
            ConsoleMonitoringController,
            create_static_files_router(
                path="/console/static",
                directories=[CONSOLE / "static"],
                include_in_schema=False,
                opt=public("console.static"),
                # Built files carry their version in their name (htmx-2.0.11.min.js).
                cache_control=CacheControlHeader(max_age=3600),
            ),
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
        template_config=TemplateConfig(directory=CONSOLE / "templates", engine=JinjaTemplateEngine),
        openapi_config=OpenAPIConfig(
            title="casemgr",
            version="0.1.0",
            # The schema describes routes, not data: it is public.
            openapi_router=Router(
                path="/schema", route_handlers=[], include_in_schema=False, opt=public("openapi.read")
            ),
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
