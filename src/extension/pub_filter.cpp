/*
 * pub_filter.cpp
 *	  Publication membership of relations, cached per decoding process.
 *
 * Runs in the process that decodes, from the output plugin's change callback.
 * The cache (an HTAB in CacheMemoryContext, relid -> actions) outlives one
 * decoding context, as pgoutput's RelationSyncCache does, because invalidation
 * callbacks cannot be unregistered; it is emptied when the relation, any
 * publication catalog or the setting realtime.publication changes.
 */
extern "C"
{
#include "postgres.h"

#include "catalog/partition.h"
#include "catalog/pg_publication.h"
#include "nodes/pg_list.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
}

#include "guc.hpp"
#include "rel_cache.hpp"
#include "pub_filter.hpp"

namespace
{

struct RelEntry
{
	Oid relid; /* hash key */
	bool valid;
	rt::ext::PublishedActions actions;
};

HTAB *rel_cache = nullptr;
char cached_publication[NAMEDATALEN]; /* realtime.publication the cache is for */

} // namespace

extern "C"
{
	static void RelcacheInvalidate(Datum arg, Oid relid);
	static void PublicationInvalidate(Datum arg, int cacheid, uint32 hashvalue);
}

/* A relation changed (InvalidOid: all of them): forget what we knew */
static void
RelcacheInvalidate(Datum, Oid relid)
{
	rt::ext::MarkRelEntriesStale<RelEntry>(rel_cache, relid);
}

/* A publication, its tables or its schemas changed: forget everything */
static void
PublicationInvalidate(Datum arg, int, uint32)
{
	RelcacheInvalidate(arg, InvalidOid);
}

/* The cache, created with its invalidation callbacks on first use */
static HTAB *
RelCache(void)
{
	HASHCTL ctl;

	if (rel_cache != nullptr)
		return rel_cache;
	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(RelEntry);
	ctl.hcxt = CacheMemoryContext;
	rel_cache = hash_create("realtime published relations", 128, &ctl,
	                        HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	CacheRegisterRelcacheCallback(RelcacheInvalidate, 0);
	CacheRegisterSyscacheCallback(PUBLICATIONOID, PublicationInvalidate, 0);
	CacheRegisterSyscacheCallback(PUBLICATIONRELMAP, PublicationInvalidate, 0);
	CacheRegisterSyscacheCallback(PUBLICATIONNAMESPACEMAP, PublicationInvalidate, 0);
	return rel_cache;
}

/* Whether rel is in the publication pub, looked up in the catalogs */
static bool
IsMember(Relation rel, Publication *pub)
{
	Oid relid = RelationGetRelid(rel);

	if (!is_publishable_relation(rel))
		return false;
	if (pub->alltables)
		return true;
	if (list_member_oid(GetRelationPublications(relid), pub->oid) ||
	    list_member_oid(GetSchemaPublications(RelationGetNamespace(rel)), pub->oid))
		return true;
	/* A partition is published through a published ancestor */
	if (rel->rd_rel->relispartition)
	{
		ListCell *lc;

		foreach (lc, get_partition_ancestors(relid))
		{
			Oid ancestor = lfirst_oid(lc);

			if (list_member_oid(GetRelationPublications(ancestor), pub->oid) ||
			    list_member_oid(GetSchemaPublications(get_rel_namespace(ancestor)), pub->oid))
				return true;
		}
	}
	return false;
}

namespace rt::ext
{

PublishedActions
RelationPublished(Relation rel)
{
	HTAB *cache = RelCache();
	Oid relid = RelationGetRelid(rel);
	RelEntry *entry;
	bool found;
	Publication *pub;

	/* A reload may name another publication (PGC_SIGHUP) */
	if (strcmp(cached_publication, realtime_publication) != 0)
	{
		RelcacheInvalidate(0, InvalidOid);
		strlcpy(cached_publication, realtime_publication, sizeof(cached_publication));
	}
	entry = static_cast<RelEntry *>(hash_search(cache, &relid, HASH_ENTER, &found));
	if (found && entry->valid)
		return entry->actions;

	/* Not valid until filled in: an ERROR below leaves it to be looked up again */
	entry->valid = false;
	entry->actions = PublishedActions{false, false, false};
	pub = GetPublicationByName(realtime_publication, true);
	if (pub != nullptr && IsMember(rel, pub))
		entry->actions = PublishedActions{pub->pubactions.pubinsert, pub->pubactions.pubupdate,
		                                  pub->pubactions.pubdelete};
	entry->valid = true;
	return entry->actions;
}

} // namespace rt::ext
