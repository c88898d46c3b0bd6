/*
 * pg_sqlstate.hpp: a PostgreSQL error as upstream's clients see it.
 *
 * Upstream Supabase Realtime reports database errors in its Postgrex form,
 * "ERROR P0001 (raise_exception) invalid column for filter x": severity,
 * SQLSTATE, the condition's name and the message. The names come from the
 * server's errcodes.txt at build time (Makefile: pg_errcodes.inc).
 *
 * Any thread; pure.
 */
#pragma once

#include <libpq-fe.h>

#include <string>
#include <string_view>

namespace rt::fanout
{

/* "raise_exception" for "P0001"; empty for a code the list does not have. */
std::string_view SqlstateName(std::string_view sqlstate);

/* "<SEVERITY> <SQLSTATE> (<name>) <message>" for an error result. */
std::string PostgrexErrorText(const PGresult *res);

} // namespace rt::fanout
