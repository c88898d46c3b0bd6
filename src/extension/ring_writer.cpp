/*
 * ring_writer.cpp
 *	  Map the ring file and drive rt_ring.h's writer from the decoder worker.
 *
 * Runs in the decoder background worker only, which is the ring's one writer.
 * The mapping lives as long as the process; the postmaster restarts the
 * worker after an ERROR and the new one resumes the same file, keeping the
 * readers' slots, positions and sequence numbers.
 */
extern "C"
{
#include "postgres.h"

#include "miscadmin.h"
#include "storage/fd.h"
}

#include <climits>
#include <ctime>
#include <fcntl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "guc.hpp"
#include "ring_writer.hpp"

namespace
{

/* A reader whose heartbeat is older than this is dead; readers beat every second */
constexpr uint64 kReaderTimeoutMs = 5000;

RtRingWriter writer;
bool ring_open = false;

/* A new epoch for each initialisation: readers notice a re-initialised ring */
uint64
NewEpoch(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (static_cast<uint64>(ts.tv_sec) * 1000000000ULL + static_cast<uint64>(ts.tv_nsec)) ^
	       (static_cast<uint64>(MyProcPid) << 32);
}

/* Map len bytes of fd read-write, shared; nullptr on failure (errno set) */
void *
MapShared(int fd, uint64 len)
{
	void *p = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

	return p == MAP_FAILED ? nullptr : p;
}

/*
 * Try to resume the existing file at path: it must be a ring of exactly the
 * configured capacity (else a new file replaces it). Returns true when the
 * writer is set up on it; otherwise, if it is a valid ring of another
 * geometry, *retire receives its mapping (to be closed once replaced).
 */
bool
TryResume(const char *path, uint64 capacity, void **retire, uint64 *retire_len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	struct stat st;
	uint64 cap = 0;
	uint32 header_size = 0;
	void *base;
	uint64 len;

	*retire = nullptr;
	*retire_len = 0;
	if (fd < 0)
	{
		if (errno != ENOENT)
			ereport(ERROR, (errcode_for_file_access(),
			                errmsg("could not open ring file \"%s\": %m", path)));
		return false;
	}
	if (fstat(fd, &st) != 0)
	{
		int save = errno;

		close(fd);
		errno = save;
		ereport(ERROR,
		        (errcode_for_file_access(), errmsg("could not stat ring file \"%s\": %m", path)));
	}
	len = static_cast<uint64>(st.st_size);
	if (!S_ISREG(st.st_mode) || len < RT_RING_HEADER_SIZE)
	{
		close(fd);
		return false;
	}
	base = MapShared(fd, len);
	close(fd);
	if (base == nullptr)
		return false;
	if (RtRingCheckHeader(base, len, &cap, &header_size) != RT_RING_OK)
	{
		munmap(base, len);
		return false;
	}
	if (cap != capacity || header_size != RT_RING_HEADER_SIZE || len != RtRingFileSize(capacity))
	{
		*retire = base;
		*retire_len = len;
		return false;
	}
	if (RtRingWriterResume(&writer, base, len, NewEpoch(), static_cast<uint32>(MyProcPid),
	                       rt::ext::MonotonicMs(), kReaderTimeoutMs) != RT_RING_OK)
	{
		munmap(base, len);
		return false;
	}
	return true;
}

/* Create, size and initialise a ring under a temporary name, then rename it to path */
void
CreateRing(const char *path, uint64 capacity)
{
	char *tmp = psprintf("%s.%d.tmp", path, MyProcPid);
	uint64 len = RtRingFileSize(capacity);
	void *base;
	int fd;
	int rc;

	(void)unlink(tmp);
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, realtime_ring_file_mode);
	if (fd < 0)
		ereport(ERROR,
		        (errcode_for_file_access(), errmsg("could not create ring file \"%s\": %m", tmp)));
	/* the umask may have removed bits the operator asked for */
	if (fchmod(fd, static_cast<mode_t>(realtime_ring_file_mode)) != 0)
	{
		int save = errno;

		close(fd);
		(void)unlink(tmp);
		errno = save;
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not set the mode of ring file \"%s\": %m", tmp)));
	}
	/* allocate every block now: a full disk later would be SIGBUS, not an error */
	rc = posix_fallocate(fd, 0, static_cast<off_t>(len));
	if (rc != 0)
	{
		close(fd);
		(void)unlink(tmp);
		errno = rc;
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not allocate %llu bytes for ring file \"%s\": %m",
		                       static_cast<unsigned long long>(len), tmp)));
	}
	base = MapShared(fd, len);
	close(fd);
	if (base == nullptr)
	{
		int save = errno;

		(void)unlink(tmp);
		errno = save;
		ereport(ERROR,
		        (errcode_for_file_access(), errmsg("could not map ring file \"%s\": %m", tmp)));
	}
	if (RtRingWriterInit(&writer, base, len, capacity, NewEpoch(), static_cast<uint32>(MyProcPid),
	                     rt::ext::MonotonicMs(), kReaderTimeoutMs) != RT_RING_OK)
		elog(ERROR, "could not initialise the ring in \"%s\"", tmp);
	if (rename(tmp, path) != 0)
	{
		int save = errno;

		(void)unlink(tmp);
		errno = save;
		ereport(ERROR, (errcode_for_file_access(),
		                errmsg("could not rename ring file \"%s\" to \"%s\": %m", tmp, path)));
	}
	pfree(tmp);
}

/* FUTEX_WAKE every waiter (no FUTEX_PRIVATE_FLAG: the readers are other processes) */
void
FutexWakeAll(uint32 *word)
{
	(void)syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

} // namespace

namespace rt::ext
{

uint64
MonotonicUs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return static_cast<uint64>(ts.tv_sec) * 1000000 + static_cast<uint64>(ts.tv_nsec) / 1000;
}

uint64
MonotonicMs(void)
{
	return MonotonicUs() / 1000;
}

void
RingOpen(void)
{
	uint64 capacity = static_cast<uint64>(realtime_ring_size);
	void *retire = nullptr;
	uint64 retire_len = 0;

	Assert(!ring_open);
	if (TryResume(realtime_ring_path, capacity, &retire, &retire_len))
	{
		ring_open = true;
		ereport(LOG,
		        (errmsg("realtime decoder resumed the ring \"%s\" at position %llu",
		                realtime_ring_path, static_cast<unsigned long long>(writer.write_pos))));
		return;
	}
	CreateRing(realtime_ring_path, capacity);
	ring_open = true;
	if (retire != nullptr)
	{
		/* readers of the old geometry drain it, see it closed and open the new file */
		RtRingHeader *old = static_cast<RtRingHeader *>(retire);

		RT_STORE_RELEASE(&old->closed, 1u);
		RT_FETCH_ADD_SEQ_CST(&old->futex, 1u);
		FutexWakeAll(RtRingFutexWord(old));
		munmap(retire, retire_len);
	}
	ereport(LOG, (errmsg("realtime decoder created the ring \"%s\" (%llu bytes)",
	                     realtime_ring_path, static_cast<unsigned long long>(capacity))));
}

bool
RingIsOpen(void)
{
	return ring_open;
}

RtRingWriter *
Ring(void)
{
	Assert(ring_open);
	return &writer;
}

void
RingNotify(void)
{
	if (RtRingWriterNotify(&writer) > 0)
		FutexWakeAll(RtRingFutexWord(writer.hdr));
}

void
RingSetDecoded(uint64 lsn)
{
	RtRingWriterSetDecodedLsn(&writer, lsn);
}

uint32
RingMaintain(void)
{
	uint64 now = MonotonicMs();
	uint32 live = 0;

	RtRingWriterHeartbeat(&writer, now);
	(void)RtRingWriterOldestNeeded(&writer, now, &live);
	return live;
}

} // namespace rt::ext
