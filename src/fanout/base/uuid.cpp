/*
 * uuid.cpp: version 4 UUIDs from OpenSSL's generator.
 */
#include "base/uuid.hpp"

#include <openssl/rand.h>

#include <random>

namespace rt::fanout
{

std::string
NewUuid()
{
	unsigned char b[16];
	if (RAND_bytes(b, sizeof(b)) != 1)
	{
		/* OpenSSL could not seed (it practically never happens): the OS, directly */
		std::random_device rd;
		for (unsigned char &c : b)
			c = static_cast<unsigned char>(rd());
	}
	b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	static const char kHex[] = "0123456789abcdef";
	std::string out;
	out.reserve(36);
	for (int i = 0; i < 16; i++)
	{
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out += '-';
		out += kHex[b[i] >> 4];
		out += kHex[b[i] & 0x0f];
	}
	return out;
}

} // namespace rt::fanout
