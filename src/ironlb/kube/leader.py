"""Leader election with a ``coordination.k8s.io/v1`` Lease, as client-go's ``leaderelection`` does it.

MetalLB's controller runs as a single replica without election; ironlb can run two with ``--leader-elect``.
A candidate takes the Lease when it is free or when its holder has not renewed it for ``lease_duration`` as
*observed locally* (no trust in other clocks), renews every ``retry_period``, and gives up leadership if it
could not renew within ``renew_deadline``. Writes are conditional on the Lease's resourceVersion, so two
candidates can never both win. On a clean stop the leader releases the Lease so the other takes over at once.

With a ``fastpath`` (:class:`ironlb.fastpath.FastPath`), every Lease request runs on that loop's thread, with the
client given for it (create it there: :meth:`LeaderElector.on_own_thread`), while ``lead()`` runs on the caller's
loop: a long validation or reconcile on the main loop never delays a renewal past ``renew_deadline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any, TypeVar

from ironlb.fastpath import FastPath
from ironlb.kube.client import LEASES, ApiError, KubeClient, KubeError, Obj

T = TypeVar("T")

log = logging.getLogger(__name__)


class LeadershipLost(Exception):
    """The Lease could not be renewed in time; whatever ran as leader has been cancelled."""


def _micro_time() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        *,
        lease_duration: float = 15.0,
        renew_deadline: float = 10.0,
        retry_period: float = 2.0,
        fastpath: FastPath | None = None,
    ) -> None:
        if not lease_duration > renew_deadline > retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")
        self.client = client
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.is_leader = False
        self._observed: tuple[str, str] | None = None  # (holder, renewTime) last seen
        self._observed_at = 0.0
        self._lease: Obj | None = None
        self.fastpath = fastpath

    @classmethod
    async def on_own_thread(
        cls, make_client: Callable[[], KubeClient], namespace: str, name: str, identity: str, **timing: float
    ) -> LeaderElector:
        """An elector whose Lease requests run on a thread of their own, with a client made there."""
        fastpath = FastPath(name="ironlb-lease")
        await fastpath.start()
        client = await fastpath.call(make_client)
        return cls(client, namespace, name, identity, fastpath=fastpath, **timing)

    async def _there(self, work: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine that talks to the apiserver on the elector's own loop (or here, without one)."""
        if self.fastpath is None:
            return await work
        return await self.fastpath.call(work)

    async def close(self) -> None:
        """Close the client and stop the thread of an elector made by :meth:`on_own_thread`."""
        if self.fastpath is not None and self.fastpath.running:
            await self.fastpath.call(self.client.close())
            await self.fastpath.stop()

    async def run(self, lead: Callable[[], Coroutine[None, None, None]]) -> None:
        """Wait to become leader, then run ``lead()`` while renewing. Raises LeadershipLost if renewal fails;
        returns when ``lead()`` returns (after releasing the Lease)."""
        while not await self._there(self._try_acquire_or_renew()):
            await asyncio.sleep(self.retry_period)
        self.is_leader = True
        log.info("leader election: %s is the leader of %s/%s", self.identity, self.namespace, self.name)
        task: asyncio.Task[None] = asyncio.create_task(lead(), name="leader-work")
        renewer = asyncio.create_task(self._there(self._renew_loop()), name="leader-renew")
        try:
            done, _ = await asyncio.wait({task, renewer}, return_when=asyncio.FIRST_COMPLETED)
            if renewer in done:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                renewer.result()  # raises LeadershipLost
            task.result()
        finally:
            for t in (task, renewer):
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.gather(task, renewer, return_exceptions=True)
            if self.is_leader:
                self.is_leader = False
                await self._there(self.release())

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_period)
            deadline = time.monotonic() + self.renew_deadline
            while True:
                try:
                    # asyncio.timeout, not wait_for: on 3.11 wait_for may lose a stop (see kube.informer.wait_synced).
                    async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                        ok = await self._try_acquire_or_renew()
                except TimeoutError:
                    ok = False
                if ok:
                    break
                if time.monotonic() >= deadline:
                    self.is_leader = False
                    log.error("leader election: %s lost the lease %s/%s", self.identity, self.namespace, self.name)
                    raise LeadershipLost(f"{self.identity} could not renew the lease within {self.renew_deadline}s")
                await asyncio.sleep(min(self.retry_period, max(0.0, deadline - time.monotonic())))

    async def _try_acquire_or_renew(self) -> bool:
        now = _micro_time()
        try:
            lease = await self.client.get_or_none(LEASES, self.name, self.namespace)
        except KubeError as err:
            log.warning("leader election: cannot read the lease: %s", err)
            return False
        spec_new: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": max(1, round(self.lease_duration)),
            "renewTime": now,
        }
        if lease is None:
            body = {"metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": {**spec_new, "acquireTime": now, "leaseTransitions": 0}}
            try:
                self._lease = await self.client.create(LEASES, body, self.namespace)
            except KubeError as err:
                log.info("leader election: cannot create the lease: %s", err)
                return False
            self._observe(self._lease)
            return True
        spec = lease.get("spec") or {}
        holder = str(spec.get("holderIdentity") or "")
        self._observe(lease)
        if holder and holder != self.identity:
            duration = float(spec.get("leaseDurationSeconds") or self.lease_duration)
            if time.monotonic() - self._observed_at < duration:
                return False  # held by someone else and not expired (as seen from here)
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder != self.identity:
            spec_new["acquireTime"] = now
            spec_new["leaseTransitions"] = transitions + 1
        else:
            spec_new["acquireTime"] = spec.get("acquireTime") or now
            spec_new["leaseTransitions"] = transitions
        body = {"metadata": {**lease["metadata"]}, "spec": {**spec, **spec_new}}
        body["metadata"].pop("managedFields", None)
        try:
            self._lease = await self.client.replace(LEASES, body)  # conditional on resourceVersion
        except ApiError as err:
            if not err.conflict:
                log.warning("leader election: cannot update the lease: %s", err)
            return False
        except KubeError as err:
            log.warning("leader election: cannot update the lease: %s", err)
            return False
        self._observe(self._lease)
        return True

    def _observe(self, lease: Obj) -> None:
        spec = lease.get("spec") or {}
        record = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
        if record != self._observed:
            self._observed = record
            self._observed_at = time.monotonic()

    async def release(self) -> None:
        """Hand the Lease back (holder cleared, 1 s duration) so a standby takes over without waiting."""
        lease = self._lease
        if lease is None:
            return
        spec = dict(lease.get("spec") or {})
        if spec.get("holderIdentity") != self.identity:
            return
        spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=_micro_time())
        body = {"metadata": {k: v for k, v in lease["metadata"].items() if k != "managedFields"}, "spec": spec}
        try:
            await asyncio.wait_for(self.client.replace(LEASES, body), 5.0)
            log.info("leader election: %s released the lease", self.identity)
        except (KubeError, TimeoutError) as err:
            log.warning("leader election: cannot release the lease: %s", err)
