"""The publisher thread: reads Orthanc's change log from a persisted cursor and publishes.

The change callback only wakes this thread. Each round reads one page of `/changes` after the
read position, builds its events, publishes them and waits for the broker's confirmation, and only
then moves the persisted cursor (an Orthanc global property) past them. A failed publish keeps the
batch and retries it with backoff, so nothing is skipped and memory stays bounded by one page.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from . import changes as ch
from ._kit import BackgroundThread, HostError, OrthancHost
from .batch_window import BatchWindow
from .builder import EventBuilder
from .config import DicomEventsConfig, mask_secrets
from .envelope import OutgoingEvent, utc_now_rfc3339
from .events import any_deleted, enabled_types
from .lease import PublisherLock
from .publishers import Publisher, PublishError, Refusal
from .resources import ResourceReader
from .spool import DeadLetter, DeletedNotice, Spool, SpooledDeletion
from .status import Status, metrics
from .stored_tags import StoredInstanceTags

# Orthanc global properties at or above 1024 are free for plugins; these two hold the state that
# must live and die with Orthanc's database (the log's sequence numbers are only valid there).
IDENTITY_PROPERTY = 5760
CURSOR_PROPERTY = 5761
_STATE_NAMES = {IDENTITY_PROPERTY: "identity", CURSOR_PROPERTY: "cursor"}

PAGE_SIZE = 1000  # one commit to the broker per page: larger pages, fewer round trips
POLL_SECONDS = 1.0
# The cursor is an Orthanc write transaction, which queues behind the stores for the index: it is
# saved at most this often (and at shutdown). A crash then re-publishes at most this much, with
# the same event ids: delivery is at least once either way.
CURSOR_SAVE_SECONDS = 1.0
BACKOFF_FIRST_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0  # the longest a returning broker waits for us
NOTICE_SPOOL_SECONDS = 0.1  # during a backoff, how soon a deletion notice reaches the disk
# A node taking over the publishing reads this many changes before the cursor again, without
# publishing them, to know which stable events were already published (cluster mode).
PRIME_CHANGES = 2000
PUBLISHER = "publisher"
STANDBY = "standby"
_COLLECTIONS = {
    ch.INSTANCE: "instances",
    ch.SERIES: "series",
    ch.STUDY: "studies",
    ch.PATIENT: "patients",
}


@dataclass(slots=True)
class Batch:
    events: list[OutgoingEvent]
    read_pos: int
    deletions: list[SpooledDeletion] = field(default_factory=list)
    more: bool = False
    dead: list[DeadLetter] = field(default_factory=list)  # given up on, kept on commit
    from_log: bool = True  # holds changes of the log (a standby node's batch does not)
    waiting_seq: int | None = None  # the oldest change the throttle held once it was built


class Backoff:
    """Exponential backoff with jitter, so many Orthancs do not reconnect in step."""

    def __init__(self, first: float = BACKOFF_FIRST_SECONDS, cap: float = BACKOFF_MAX_SECONDS):
        self._first = first
        self._cap = cap
        self._next = first

    def reset(self) -> None:
        self._next = self._first

    def next_delay(self) -> float:
        delay = self._next
        self._next = min(self._cap, self._next * 2)
        return random.uniform(delay / 2, delay)


class EventWorker:
    """Owns the publisher, the spool and the cursor; runs on its own thread."""

    def __init__(
        self,
        host: OrthancHost,
        config: DicomEventsConfig,
        publisher_factory: Callable[[], Publisher],
        status: Status,
        clock: Callable[[], float] = time.monotonic,
        page_size: int = PAGE_SIZE,
        poll_seconds: float = POLL_SECONDS,
        lock: PublisherLock | None = None,
        stored_tags: StoredInstanceTags | None = None,
    ) -> None:
        self._host = host
        self._config = config
        self._stored_tags = stored_tags
        self._publisher_factory = publisher_factory
        self._status = status
        self._clock = clock
        self._page_size = page_size
        self._poll_seconds = poll_seconds
        self._types = enabled_types(config.events)
        self._tracks_deletions = any_deleted(self._types)
        self._wake = threading.Event()
        self.ready = threading.Event()  # set once the cursor is known (tests and status wait on it)
        self._deadline = float("inf")
        self._notices: list[DeletedNotice] = []
        self._notices_lock = threading.Lock()
        self._thread = BackgroundThread(host, "dicom-events", self._run)
        self._stopping = self._thread.stopping
        self._backoff = Backoff()
        self._batch_window = BatchWindow(config.batch_window_ms, config.batch_window_max_ms)
        self.identity = ""
        self._cursor = 0
        self._saved_cursor = 0
        self._saved_at = float("-inf")
        self._read_pos = 0
        self._cursor_known = False
        self._spooler: Callable[[], None] | None = None  # spools notices, once the spool is open
        self._spool: Spool | None = None
        self._notices_spooled = 0  # deletion notices put on disk since the start
        self._last_read: ch.Change | None = None  # the newest change read from the log
        # The log's end read by the first deletion of a burst, valid until another change comes.
        self._log_end_at_deletion: int | None = None
        # Cluster mode: only the holder of the lock publishes the shared log (and moves the shared
        # cursor); every node publishes the deletions it saw itself, from its own spool.
        self._lock = lock
        self.role = PUBLISHER if lock is None else STANDBY
        self.role_since = time.time()
        self.takeovers = 0
        self._lock_checked_at = float("-inf")
        self._builder: EventBuilder | None = None

    @property
    def publishes_log(self) -> bool:
        return self.role == PUBLISHER

    @property
    def repeated_stable_dropped(self) -> int:
        return self._builder.repeated_stable_dropped if self._builder is not None else 0

    @property
    def premature_stable_dropped(self) -> int:
        return self._builder.premature_stable_dropped if self._builder is not None else 0

    # -- called from Orthanc's change thread: no network I/O here ------------------------------

    def wake(self) -> None:
        """A change was recorded: the change callback's whole work."""
        self._log_end_at_deletion = None
        self._wake.set()

    def deleted(self, level_name: str, resource_id: str) -> None:
        """Note a deletion (`level_name` as `/changes` spells it) and wake the thread.

        The deletion is placed after the log's end as it is now: the callbacks come in the
        order of the changes, so a resource stored again right after the deletion (a re-sent
        instance) comes after it, even when the publisher spools the notice later. One read of
        the log's end serves a whole burst of deletions (no other change in between).
        """
        level = ch.level_from_name(level_name)
        if self._tracks_deletions and level is not None:
            after = self._log_end_at_deletion
            if after is None and self.ready.is_set():
                with contextlib.suppress(Exception):  # the publisher's read is the fallback
                    after = self._log_end_at_deletion = self._log_end()
            notice = DeletedNotice(level, resource_id, utc_now_rfc3339(), after)
            with self._notices_lock:
                self._notices.append(notice)
        self._wake.set()

    def start(self) -> None:
        """On ORTHANC_STARTED: fix the start position now (two quick calls), then run."""
        if self._lock is not None:
            self._thread.start()  # the position is fixed by whoever holds the lock
            return
        try:
            self._open_cursor()
        except Exception as error:
            self._host.log_error(f"dicom-events: cannot read the change log: {self._mask(error)}")
            # The thread tries again, from the stored cursor once it can be read.
        self._thread.start()

    def stop(self) -> bool:
        """Flush for at most `ShutdownFlushSeconds`, then give up; True when the thread ended."""
        flush = self._config.shutdown_flush_seconds
        self._deadline = self._clock() + flush
        # A publish blocked on the network may outlast the flush: a little grace, never more.
        return self._thread.stop(flush + 2.0, wake=self._wake.set)

    # -- the publisher thread -------------------------------------------------------------------

    def _run(self) -> None:
        opened = self._open_until_ready()
        if opened is None:
            return  # stopped before it could start
        reader, builder, publisher, spool = opened
        self._spooler = lambda: self._spool_notices(reader, spool)
        try:
            self._loop(reader, builder, publisher, spool)
        finally:
            publisher.close()
            if spool is not None:
                spool.close()
            if self._lock is not None:
                self._lock.release()  # another node takes over at its next try

    def _open_until_ready(
        self,
    ) -> tuple[ResourceReader, EventBuilder, Publisher, Spool | None] | None:
        """Open the spool, the cursor and the publisher, retrying with backoff until it works.

        A corrupt or unwritable state file or a transient Orthanc error is reported in the status
        route (503 until ready) and retried; the thread never ends while Orthanc runs.
        """
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                return self._open()
            except Exception as error:
                delay = backoff.next_delay()
                message = f"cannot start the publisher: {self._mask(error)}"
                self._host.log_error(f"dicom-events: {message}; retrying in {delay:.1f} s")
                self._status.add(start_failures=1)
                self._status.update(broker_state="failed", last_error=message)
                self._report()
                self._stopping.wait(delay)
        return None

    def _open(self) -> tuple[ResourceReader, EventBuilder, Publisher, Spool | None]:
        # Always open: it also keeps the dead letters.
        spool: Spool | None = Spool(self._config.state_directory)
        try:
            reader = ResourceReader(self._host)
            if self._lock is None:
                if not self._cursor_known:
                    self._open_cursor()
                if spool is not None:
                    self._check_epoch(spool)
                # In a cluster, a resource this node saw stored may have been deleted through
                # another node, which publishes that deletion: no reconciliation there.
                if spool is not None and self._tracks_deletions:
                    self._reconcile(spool, reader)
            builder = self._new_builder(reader, spool)
            publisher = self._publisher_factory()
        except BaseException:
            if spool is not None:
                spool.close()
            raise
        self._spool = spool
        self._status.update(broker_state="starting", last_error=None)
        self.ready.set()
        return reader, builder, publisher, spool

    def _new_builder(self, reader: ResourceReader, spool: Spool | None) -> EventBuilder:
        builder = EventBuilder(
            self._config,
            reader,
            self.identity,
            spool.identity if spool else self.identity,
            self._clock,
            self._stored_tags,
        )
        self._builder = builder
        return builder

    def _take_role(
        self, reader: ResourceReader, builder: EventBuilder, spool: Spool | None
    ) -> EventBuilder:
        """Cluster mode: take the lock when free, notice when it is lost; the builder to use."""
        lock = self._lock
        if lock is None:
            return builder
        now = self._clock()
        if self.role == STANDBY and now - self._lock_checked_at < self._poll_lock_seconds():
            return builder
        self._lock_checked_at = now
        held = lock.acquire()
        if held and self.role == STANDBY:
            # The identity and the cursor are shared: read (or made) only by the lock's holder.
            self._cursor_known = False
            self._open_cursor()
            builder = self._new_builder(reader, spool)
            self._prime(builder)
            self.role, self.role_since = PUBLISHER, time.time()
            self.takeovers += 1
            self._host.log_warning(
                f"dicom-events: this node now publishes the shared change log, from change"
                f" {self._cursor} ({lock.describe()})"
            )
        elif not held and self.role == PUBLISHER:
            self._lost_lock()
            builder = self._new_builder(reader, spool)
        return builder

    def _lost_lock(self) -> None:
        self.role, self.role_since = STANDBY, time.time()
        self._cursor_known = False
        self._host.log_warning(
            "dicom-events: lost the publishing lock; another node publishes the shared change"
            " log, this one only the deletions it sees"
        )

    def _poll_lock_seconds(self) -> float:
        cluster = self._config.cluster
        return cluster.lock_poll_ms / 1000 if cluster is not None else self._poll_seconds

    def _prime(self, builder: EventBuilder) -> None:
        """Read the changes just before the cursor again, publishing nothing (see PRIME_CHANGES)."""
        position = max(0, self._cursor - PRIME_CHANGES)
        while position < self._cursor:
            page = ch.parse_page(self._host.get(ch.changes_uri(position, self._page_size)))
            changes = [change for change in page.changes if change.seq <= self._cursor]
            builder.prime(changes)
            if not page.changes or page.changes[-1].seq >= self._cursor or page.done:
                return
            position = page.changes[-1].seq

    def _loop(
        self,
        reader: ResourceReader,
        builder: EventBuilder,
        publisher: Publisher,
        spool: Spool | None,
    ) -> None:
        batch: Batch | None = None
        ahead: Batch | None = None  # the next page, built while the broker confirmed this one
        ahead_notices = 0  # deletions spooled when it was built
        while True:
            if self._stopping.is_set() and (
                self._clock() >= self._deadline
                or self._status.snapshot().broker_state == "disconnected"
            ):
                # Past the flush time, or the broker refused the last try: what is left goes
                # after the next start, and Orthanc's stop is not held for nothing.
                self._save_cursor(force=True)
                if batch is not None or self._status.snapshot().spooled_deletions:
                    self._host.log_warning(
                        "dicom-events: stopping with events not yet published; they are"
                        " published after the next start"
                    )
                return
            try:
                self._spool_notices(reader, spool)
                if batch is not None and batch.from_log and not self.publishes_log:
                    batch = None  # the lock was lost meanwhile: the log is another node's now
                if batch is None and ahead is not None:
                    if self._notices_spooled != ahead_notices:
                        # A deletion came while it waited: built again, it places the deletion
                        # before any later re-store of the same instance.
                        ahead = None
                        self._rewind(builder)
                    else:
                        batch, ahead = ahead, None
                if batch is None:
                    builder = self._take_role(reader, builder, spool)
                    batch = self._next_batch(builder, spool)
                    # The parents just learnt reach the disk before their events leave: after
                    # a crash they tell which resources vanished without a callback.
                    self._spool_notices(reader, spool)
                send = getattr(publisher, "send", None)
                if batch.events and send is not None and ahead is None and self._pipelines(batch):
                    # A backlog: the next page is read and built while the broker stores this
                    # one; it is published only after this one is confirmed and committed.
                    confirmations = send(batch.events)
                    # Deletions noticed meanwhile are spooled first, so that the next page
                    # places them before a later re-store, as the loop's start does.
                    self._spool_notices(reader, spool)
                    ahead = self._next_batch(builder, spool, read_pos=batch.read_pos)
                    self._spool_notices(reader, spool)
                    ahead_notices = self._notices_spooled
                    refused = confirmations()
                elif batch.events:
                    refused = publisher.publish(batch.events)
                    batch.dead.extend(_dead_letters(batch.events, refused))
                    unroutable = sum(r.reason.startswith("unroutable") for r in refused)
                    self._status.add(
                        published=len(batch.events) - len(refused), unroutable=unroutable
                    )
                self._commit(batch, builder, spool)
                more = batch.more
                batch = None
                self._backoff.reset()
                self._status.update(broker_state="connected" if publisher.connected else "idle")
                self._report()
                if more:
                    continue
                if self._stopping.is_set():
                    # The stop may have come after the commit above looked: save it now.
                    self._save_cursor(force=True)
                    return
                self._idle(builder, publisher)
            except PublishError as error:
                self._failed(error, "publish", getattr(publisher, "came_back", None))
            except HostError as error:
                # The page is rebuilt from the persisted cursor, throttle included.
                batch = ahead = None
                self._rewind(builder)
                self._failed(error, "read from Orthanc")
            except Exception as error:  # the thread must survive anything
                batch = ahead = None
                self._rewind(builder)
                self._failed(error, "build events")

    def _get_state(self, index: int) -> str:
        """The identity or the cursor: an Orthanc global property, or in a cluster the table the
        nodes share (seeded from this node's property: a single node turned into a cluster keeps
        its event ids and position)."""
        if self._lock is not None:
            shared = self._lock.get_state(_STATE_NAMES[index])
            if shared is not None:
                return shared
        return self._host.get_global_property(index)

    def _set_state(self, index: int, value: str) -> None:
        if self._lock is not None:
            self._lock.set_state(_STATE_NAMES[index], value)
        else:
            self._host.set_global_property(index, value)

    def _open_cursor(self) -> None:
        self.identity = self._get_state(IDENTITY_PROPERTY)
        made = not self.identity
        if made:
            self.identity = uuid.uuid4().hex
        if made or self._lock is not None:  # in a cluster: seeds the shared table
            self._set_state(IDENTITY_PROPERTY, self.identity)
        end = self._log_end()
        stored = self._get_state(CURSOR_PROPERTY)
        if stored:
            cursor = int(stored)
            if cursor > end:
                self._host.log_warning(
                    f"dicom-events: cursor {cursor} is past the change log's end {end}"
                    " (database replaced?): continuing from the end"
                )
                cursor = end
        else:
            cursor = 0 if self._config.replay_from_start else end
            self._host.log_info(f"dicom-events: first start, publishing changes after {cursor}")
        self._cursor = self._read_pos = self._saved_cursor = cursor
        self._set_state(CURSOR_PROPERTY, str(cursor))
        self._saved_at = self._clock()
        self._status.update(last_published_seq=cursor, log_end_seq=end)
        # Only now: a start that failed half-way must not publish from position 0.
        self._cursor_known = True

    def _check_epoch(self, spool: Spool) -> None:
        """A new event-id epoch when the log this identity numbered has gone backwards.

        Event ids are `<identity>-<seq>`. An older copy of Orthanc's index brings back an older
        log under the same identity: its next changes would reuse sequence numbers, and ids,
        that consumers already saw for other events. The state file remembers the last change
        published; if the log no longer holds it, the identity is replaced.
        """
        mark = spool.high_water()
        if mark is None or not mark.startswith(self.identity + "|"):
            return
        seq = int(mark.split("|")[1])
        end = self._log_end()
        moved = end < seq
        if not moved:
            page = ch.parse_page(self._host.get(ch.changes_uri(seq - 1, 1)))
            same = [change for change in page.changes if change.seq == seq]
            moved = bool(same) and _high_water(self.identity, same[0]) != mark
        if not moved:
            return
        old, self.identity = self.identity, uuid.uuid4().hex
        self._host.set_global_property(IDENTITY_PROPERTY, self.identity)
        self._host.log_warning(
            f"dicom-events: the change log went back before change {seq} published under"
            f" identity {old} (an older index restored?): new event ids use identity"
            f" {self.identity}"
        )

    def _log_end(self) -> int:
        return int(self._host.get_json("/changes?last")["Last"])

    def _spool_notices(self, reader: ResourceReader, spool: Spool | None) -> None:
        """Put deletion notices and parent links on disk; nothing is dropped when this fails."""
        links = reader.take_new_links()
        if spool is None or not self._tracks_deletions:
            return
        if links:
            try:
                spool.remember_parents(links)
                if self._lock is not None and self.publishes_log:
                    self._lock.remember_parents(links)
            except Exception:
                reader.new_links[:0] = links
                raise
        with self._notices_lock:
            notices, self._notices = self._notices, []
        if not notices:
            return
        try:
            deleted = [notice.resource_id for notice in notices]
            self._learn_shared_parents(spool, deleted)
            # Deletions are ordered after every change recorded before they were seen.
            spool.add(notices, after_seq=self._log_end())
        except Exception:
            with self._notices_lock:
                self._notices[:0] = notices  # kept, in order, for the next try
            raise
        self._notices_spooled += len(notices)
        self._status.update(spooled_deletions=spool.count())
        if self._lock is not None:
            with contextlib.suppress(Exception):  # rows left behind cost only space
                self._lock.forget_parents(deleted)

    def _learn_shared_parents(self, spool: Spool, resource_ids: list[str]) -> None:
        """In a cluster, the ancestors the publisher shared (this node may never have read the
        log); without them a deleted event carries fewer ids, it is not held back."""
        if self._lock is None:
            return
        try:
            links = self._lock.parents_of(resource_ids)
        except Exception as error:
            self._host.log_warning(
                f"dicom-events: ancestors of deleted resources unknown: {self._mask(error)}"
            )
            return
        if links:
            spool.remember_parents(links)

    def _reconcile(self, spool: Spool, reader: ResourceReader) -> None:
        """Queue the deletions Orthanc made without telling us (it died before its callback).

        What the spool saw stored and Orthanc no longer holds was deleted; instances first,
        patients last, like Orthanc's own callbacks, all after the log's current end.
        """
        notices: list[DeletedNotice] = []
        now = utc_now_rfc3339()
        for level in (ch.INSTANCE, ch.SERIES, ch.STUDY, ch.PATIENT):
            known = spool.known(level)
            if known:
                gone = known - reader.all_ids(_COLLECTIONS[level])
                notices.extend(
                    DeletedNotice(level, resource_id, now) for resource_id in sorted(gone)
                )
        if notices:
            spool.add(notices, after_seq=self._log_end())
            self._host.log_warning(
                f"dicom-events: {len(notices)} resource(s) deleted while no callback could tell"
                " (Orthanc stopped abruptly): their deleted events are queued"
            )

    def _pipelines(self, batch: Batch) -> bool:
        """Whether the page after `batch` may be built before `batch` is committed: a backlog
        of the log, on a single node, with no deletion in `batch` (the next page would read it
        from the spool again) and no stop under way (which flushes the throttle)."""
        return (
            batch.more
            and not batch.deletions
            and self.publishes_log
            and self._lock is None
            and not self._stopping.is_set()
        )

    def _next_batch(
        self, builder: EventBuilder, spool: Spool | None, read_pos: int | None = None
    ) -> Batch:
        """The next page after `read_pos` (default: the last committed page)."""
        position = self._read_pos if read_pos is None else read_pos
        if not self.publishes_log:
            # A standby node publishes only its own deletions; their order against the log's
            # changes is the publisher's business (see the README: several nodes).
            own = spool.pending(self._page_size) if spool is not None else []
            events = builder.build([], own)
            return Batch(
                events=events,
                read_pos=self._read_pos,
                deletions=own,
                more=len(own) >= self._page_size,
                dead=list(builder.dead_letters),
                from_log=False,
            )
        page = ch.parse_page(self._host.get(ch.changes_uri(position, self._page_size)))
        read_pos = page.changes[-1].seq if page.changes else max(position, page.last)
        if page.changes:
            self._last_read = page.changes[-1]
            self._batch_window.read(len(page.changes))
        if not page.changes and page.last < position:
            read_pos = page.last  # the log was reset: follow it
        deletions: list[SpooledDeletion] = []
        if spool is not None:
            deletions = spool.pending(self._page_size, up_to_seq=None if page.done else page.last)
        events = builder.build(page.changes, deletions)
        dead = list(builder.dead_letters)
        caught_up = page.done and len(deletions) < self._page_size
        if caught_up and self._stopping.is_set():
            events.extend(builder.flush_waiting())
        self._status.update(log_end_seq=max(page.last, read_pos))
        return Batch(
            events=events,
            read_pos=read_pos,
            deletions=deletions,
            more=not caught_up,
            dead=dead,
            waiting_seq=builder.earliest_waiting_seq(),
        )

    def _commit(self, batch: Batch, builder: EventBuilder, spool: Spool | None) -> None:
        cursor = self._cursor
        if self.publishes_log:
            self._read_pos = batch.read_pos
            # Held back at the throttle when the page was built (a page built since may have
            # taken them out, but it is not published yet).
            waiting = batch.waiting_seq
            cursor = batch.read_pos if waiting is None else min(batch.read_pos, waiting - 1)
            self._cursor = cursor
            self._save_cursor(force=self._stopping.is_set())
        if spool is not None and batch.dead:
            spool.dead_letter(batch.dead)
            self._report_dead_letters(batch.dead)
        if spool is not None and batch.deletions:
            spool.done(batch.deletions)
        self._status.update(
            last_published_seq=cursor,
            spooled_deletions=spool.count() if spool is not None else 0,
            throttled_waiting=len(builder.throttle.waiting()),
        )

    def _save_cursor(self, force: bool) -> None:
        if self._cursor == self._saved_cursor or not self.publishes_log:
            return
        now = self._clock()
        # In a cluster the cursor is a row of our own table, not an Orthanc transaction: saved
        # at every commit, so a node taking over re-publishes only the batch in flight.
        if force or self._lock is not None or now - self._saved_at >= CURSOR_SAVE_SECONDS:
            if self._lock is not None and not self._lock.acquire():
                # Another node may publish already: the shared cursor is its to move now.
                self._lost_lock()
                return
            self._set_state(CURSOR_PROPERTY, str(self._cursor))
            self._saved_cursor, self._saved_at = self._cursor, now
            last = self._last_read
            if self._spool is not None and last is not None and last.seq <= self._cursor:
                self._spool.set_high_water(_high_water(self.identity, last))

    def _rewind(self, builder: EventBuilder) -> None:
        self._read_pos = self._cursor
        builder.reset_throttle()

    def _idle(self, builder: EventBuilder, publisher: Publisher) -> None:
        timeout = self._poll_seconds
        due = builder.throttle.next_due_in()
        if due is not None:
            timeout = min(timeout, due)
        if self._lock is not None and not self.publishes_log:
            # A standby node tries the lock every LockPollMs, changes or not.
            timeout = min(timeout, self._poll_lock_seconds())
        if self._wake.wait(timeout):
            self._wake.clear()
            # Changes come in bursts (four or five per stored instance): gathering them for a
            # moment makes one round, with one broker commit and one cursor write, of what would
            # be many, so publishing competes far less with storing (longer while it lasts).
            self._stopping.wait(self._batch_window.next_seconds())
        publisher.keep_alive()

    def _failed(
        self, error: Exception, doing: str, came_back: Callable[[], bool] | None = None
    ) -> None:
        message = f"cannot {doing}: {self._mask(error)}"
        self._status.add(failed_attempts=1)
        self._status.update(broker_state="disconnected" if doing == "publish" else "degraded")
        self._status.update(last_error=message)
        delay = self._backoff.next_delay()
        self._host.log_warning(f"dicom-events: {message}; retrying in {delay:.1f} s")
        self._report()
        if self._stopping.is_set():
            return  # the loop ends at once: no broker to flush to
        if self._lock is not None and self.publishes_log and not self._lock.acquire():
            # The round trip also keeps the lock's session from idling out during the wait.
            self._lost_lock()
        # A stop request ends the wait early; deletions seen meanwhile go to disk at once.
        end = self._clock() + delay
        while not self._stopping.wait(min(NOTICE_SPOOL_SECONDS, max(0.0, end - self._clock()))):
            if self._clock() >= end or (came_back is not None and came_back()):
                return  # the broker's return ends the wait at once
            if self._notices and self._spooler is not None:
                with contextlib.suppress(Exception):  # reported by the round that follows
                    self._spooler()

    def _report_dead_letters(self, letters: list[DeadLetter]) -> None:
        last = letters[-1]
        self._status.add(dead_letters=len(letters))
        self._status.update(
            last_dead_letter={"Id": last.event_id, "Type": last.type, "Reason": last.reason}
        )
        for letter in letters[:5]:
            self._host.log_warning(
                f"dicom-events: event {letter.event_id} ({letter.type} of {letter.subject})"
                f" kept as a dead letter: {letter.reason}"
            )

    def _report(self) -> None:
        for name, value in metrics(self._status.snapshot()).items():
            self._host.set_metric(name, value)

    def _mask(self, error: object) -> str:
        return mask_secrets(str(error), self._config)


def _dead_letters(events: list[OutgoingEvent], refused: list[Refusal]) -> list[DeadLetter]:
    by_id = {event.id: event for event in events}
    letters = []
    now = utc_now_rfc3339()
    for refusal in refused:
        event = by_id.get(refusal.event_id)
        if event is None:
            continue
        subject = str(event.envelope.get("subject", ""))
        letters.append(DeadLetter(event.id, event.type, subject, refusal.reason, now, event.body))
    return letters


def _high_water(identity: str, change: ch.Change) -> str:
    """What identifies the last change published: its number and what it was about."""
    return f"{identity}|{change.seq}|{change.resource_id}|{change.date}"
