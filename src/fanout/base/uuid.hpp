/*
 * uuid.hpp: random (version 4) UUIDs in their text form.
 *
 * Any thread. Presence keys the server makes, probe rows of the authorizer.
 */
#pragma once

#include <string>

namespace rt::fanout
{

/* "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lower case. */
std::string NewUuid();

} // namespace rt::fanout
