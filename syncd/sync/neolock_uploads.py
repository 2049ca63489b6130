"""`neolock-uploads`: the uploads listing at the speed of the wire, crash-safe.

- Pages are as large as the vendor accepts: 1,000 rows, stepping down (500, 200, 100) when a size
  is refused with a 400, and remembering the refusal in the cursor so later runs start below it.
- Pages are fetched ahead (a few in flight, each paced by the client) while earlier ones are
  written, and several pages are committed at a time together with the cursor. A run that dies
  resumes from the last committed cursor; pages are re-read, never skipped.
- Each page is validated at once (`UPLOAD_ROWS`) and handed to the database as the vendor's JSON
  text: PostgreSQL extracts the columns, so no Python object is made per row.
- Once a pass has read the listing to its end, the cursor says so for good (`listed`): until
  then `neolock-devices` does not GET devices merely because the listing has not shown them yet.
"""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from syncd.db import ops, phones
from syncd.db.pool import Database
from syncd.errors import VendorBadRequest, VendorFault
from syncd.sync.base import RunContext
from syncd.vendors.neolock.client import NeoLockClient
from syncd.vendors.neolock.models import RawUploadPage

PROVIDER = "neolock"
PAGE_SIZES = (1000, 500, 200, 100)  # tried largest first; 100 is the size the vendor's doc shows
LEGACY_PAGE_SIZE = 100  # cursors written before the page size was stored counted pages of 100
MAX_PAGES = 100_000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def page_sizes(configured: int, refused: int | None) -> list[int]:
    """The page sizes to try, largest first: at most `configured`, below any size refused."""
    sizes = [configured] + [s for s in PAGE_SIZES if s < configured]
    return [s for s in sizes if refused is None or s < refused] or [sizes[-1]]


def listing_read(cursor: Mapping[str, Any]) -> bool:
    """Whether a pass of the uploads listing was ever read to its end, by the job's cursor (a
    cursor from before `listed` was stored shows it as page 0 with a page size)."""
    return bool(cursor.get("listed")) or (cursor.get("next_page") == 0 and "page_size" in cursor)


class NeoLockUploadsJob:
    """`neolock-uploads`: pages through uploaded devices; groups of pages commit with the cursor."""

    name = "neolock-uploads"
    default_interval = 900.0

    def __init__(self, db: Database, client: NeoLockClient, page_size: int = 1000, *,
                 ahead: int = 4, commit_pages: int = 10,
                 seen_granularity: dt.timedelta = dt.timedelta(hours=1)) -> None:
        if page_size < 1 or ahead < 1 or commit_pages < 1:
            raise ValueError("page_size, ahead and commit_pages must be at least 1")
        self.db = db
        self.client = client
        self.page_size = page_size
        self.ahead = ahead
        self.commit_pages = commit_pages
        self.seen_granularity = seen_granularity

    async def run(self, ctx: RunContext) -> None:
        """Resume at the stored page; read to the first page that is not full."""
        cursor = await ops.get_cursor(self.db, self.name)
        offset = int(cursor.get("next_page", 0)) * int(cursor.get("page_size", LEGACY_PAGE_SIZE))
        refused = cursor.get("refused_page_size")
        first, refused = await self._first_page(offset, refused if
                                                isinstance(refused, int) else None)
        await _Pass(self, ctx, first, refused, listing_read(cursor)).run()

    async def _first_page(self, offset: int, refused: int | None
                          ) -> tuple[RawUploadPage, int | None]:
        """The page holding row `offset`, at the largest size the vendor accepts."""
        sizes = page_sizes(self.page_size, refused)
        for size in sizes:
            try:
                return await self.client.get_raw_uploads(offset // size, size), refused
            except VendorBadRequest:
                if size == sizes[-1]:
                    raise
                refused = size
        raise AssertionError("unreachable")  # pragma: no cover

    def cursor(self, page: RawUploadPage, refused: int | None,
               listed: bool = False) -> dict[str, Any]:
        """The cursor after `page`: the next page (0 after the last one), its size, and whether
        a pass has ever reached the end (`listed`, kept once true)."""
        value: dict[str, Any] = {"next_page": 0 if page.is_last else page.page_num + 1,
                                 "page_size": page.page_size}
        if refused is not None:
            value["refused_page_size"] = refused
        if listed or page.is_last:
            value["listed"] = True
        return value


class _Pass:
    """One run's read of the listing: fetches ahead, one commit in flight, pages kept in order."""

    def __init__(self, job: NeoLockUploadsJob, ctx: RunContext, first: RawUploadPage,
                 refused: int | None, listed: bool) -> None:
        self.job = job
        self.ctx = ctx
        self.first = first
        self.refused = refused
        self.listed = listed
        self.size = first.page_size
        self.fetches: collections.deque[asyncio.Task[RawUploadPage]] = collections.deque()
        self.next_num = first.page_num + 1
        self.writing: asyncio.Task[None] | None = None

    async def run(self) -> None:
        group: list[RawUploadPage] = []
        page, previous = self.first, ""
        try:
            for _ in range(MAX_PAGES):
                if page.count and page.body == previous:
                    raise VendorFault(PROVIDER, f"uploads page {page.page_num} repeats the "
                                                "previous page: the server ignores pageNum")
                previous = page.body
                group.append(page)
                if page.is_last:
                    break
                while len(self.fetches) < self.job.ahead:
                    self.fetches.append(asyncio.create_task(
                        self.job.client.get_raw_uploads(self.next_num, self.size)))
                    self.next_num += 1
                if len(group) >= self.job.commit_pages:
                    await self._commit(group)
                    group = []
                page = await self.fetches.popleft()
            else:
                raise VendorFault(PROVIDER, f"uploads did not end within {MAX_PAGES} pages")
        finally:
            # Whatever stopped the read, the pages received in order are kept (with their
            # cursor); pages still in flight are abandoned and will be read again.
            await self._cancel_fetches()
            if group:
                await self._commit(group)
            if self.writing is not None:
                await self.writing

    async def _commit(self, group: Sequence[RawUploadPage]) -> None:
        """Start committing `group` once the previous commit is done (commits stay in order)."""
        if self.writing is not None:
            writing, self.writing = self.writing, None
            await writing
        self.writing = asyncio.create_task(self._write(list(group)))

    async def _write(self, group: list[RawUploadPage]) -> None:
        job = self.job
        async with job.db.transaction() as conn:
            await phones.merge_uploads(conn, PROVIDER, [(p.body, p.rows_at) for p in group],
                                       _now(), job.seen_granularity)
            await ops.set_cursor(conn, job.name, job.cursor(group[-1], self.refused,
                                                            self.listed))
        self.ctx.add_items(sum(p.count for p in group))
        self.ctx.progress(self.ctx.items, None)

    async def _cancel_fetches(self) -> None:
        for task in self.fetches:
            task.cancel()
        await asyncio.gather(*self.fetches, return_exceptions=True)
        self.fetches.clear()
