/*
 * rel_cache.hpp
 *	  What the backend-local caches keyed by relation share (pub_filter.cpp:
 *	  publication membership; rel_meta.cpp: column metadata).
 *
 * Each cache is an HTAB whose entries start with the relation's Oid (the
 * key) and a `valid` flag; its invalidation callbacks mark entries stale and
 * the next lookup rebuilds them. The process that decodes only.
 */
#pragma once

extern "C"
{
#include "postgres.h"

#include "utils/hsearch.h"
}

namespace rt::ext
{

/*
 * Mark stale the entry of relation relid in cache (InvalidOid: every entry),
 * as a relcache callback does. Entry: { Oid relid; bool valid; ... }. A cache
 * not yet created (nullptr) has nothing to mark.
 */
template <typename Entry>
void
MarkRelEntriesStale(HTAB *cache, Oid relid)
{
	HASH_SEQ_STATUS status;
	Entry *entry;

	if (cache == nullptr)
		return;
	if (OidIsValid(relid))
	{
		entry = static_cast<Entry *>(hash_search(cache, &relid, HASH_FIND, nullptr));
		if (entry != nullptr)
			entry->valid = false;
		return;
	}
	hash_seq_init(&status, cache);
	while ((entry = static_cast<Entry *>(hash_seq_search(&status))) != nullptr)
		entry->valid = false;
}

} // namespace rt::ext
