// MountOptions: each raidfs -o option is taken with its value checked, mount(8)'s own are dropped,
// the rest go to FUSE in order; a bad value is one EINVAL line naming the option.
#include "utils/mount_options.h"

#include <gtest/gtest.h>

namespace raidfs::utils {
namespace {

TEST(MountOptionsTest, RaidfsOptionsAreTakenAndTheRestGoToFuse) {
  MountOptions o;
  ASSERT_TRUE(o.parse("ro,noatime,defaults,_netdev,x-systemd.automount,transport=classic"));
  ASSERT_TRUE(o.parse("threads=7,uring_threads=3,uring_entries=16,commit=30,no_writeback_cache"));
  ASSERT_TRUE(o.parse("attr_timeout=0.5,entry_timeout=2,,allow_other,async_dio"));
  EXPECT_TRUE(o.read_only);
  EXPECT_FALSE(o.uring);
  EXPECT_EQ(o.threads, 7u);
  EXPECT_EQ(o.uring_threads, 3u);
  EXPECT_EQ(o.uring_entries, 16u);
  EXPECT_EQ(o.commit_interval_s, 30u);
  EXPECT_FALSE(o.dispatcher.writeback_cache);
  EXPECT_TRUE(o.dispatcher.async_dio);
  EXPECT_DOUBLE_EQ(o.dispatcher.attr_timeout, 0.5);
  EXPECT_DOUBLE_EQ(o.dispatcher.entry_timeout, 2.0);
  EXPECT_EQ(o.fuse_options, (std::vector<std::string>{"ro", "noatime", "allow_other"}));
}

TEST(MountOptionsTest, RemountIsTakenAndTheFlagsKept) {
  MountOptions o;
  EXPECT_FALSE(o.remount);
  ASSERT_TRUE(o.parse("rw,nosuid,user_id=0,remount,ro"));
  EXPECT_TRUE(o.remount);
  EXPECT_TRUE(o.read_only);
  EXPECT_EQ(o.fuse_options, (std::vector<std::string>{"rw", "nosuid", "user_id=0", "ro"}));
}

TEST(MountOptionsTest, DefaultsAndCommitZeroMeanTheDefault) {
  MountOptions o;
  EXPECT_EQ(o.commit_interval_s, MountOptions::kCommitIntervalDefault);
  EXPECT_TRUE(o.uring);
  EXPECT_TRUE(o.dispatcher.writeback_cache);
  ASSERT_TRUE(o.parse("commit=0"));
  EXPECT_EQ(o.commit_interval_s, MountOptions::kCommitIntervalDefault);
  EXPECT_EQ(o.log, "");  // syslog when there is one, else kLogFileDefault
  ASSERT_TRUE(o.parse("log=/var/log/x.log"));
  EXPECT_EQ(o.log, "/var/log/x.log");
  ASSERT_TRUE(o.parse("log=syslog"));
  EXPECT_EQ(o.log, "syslog");
  EXPECT_TRUE(o.dispatcher.posix_acl);
  ASSERT_TRUE(o.parse("noacl"));
  EXPECT_FALSE(o.dispatcher.posix_acl);
  EXPECT_TRUE(o.cleaner);
  ASSERT_TRUE(o.parse("nocleaner"));
  EXPECT_FALSE(o.cleaner);
  EXPECT_FALSE(o.discard);
  ASSERT_TRUE(o.parse("discard"));
  EXPECT_TRUE(o.discard);
  ASSERT_TRUE(o.parse("nodiscard"));
  EXPECT_FALSE(o.discard);
  EXPECT_EQ(o.copy_below, 64u * 1024);
  ASSERT_TRUE(o.parse("copy_below=4K"));
  EXPECT_EQ(o.copy_below, 4096u);
  ASSERT_TRUE(o.parse("copy_below=1M"));
  EXPECT_EQ(o.copy_below, 1u << 20);
  EXPECT_TRUE(o.fuse_options.empty())
      << "log=, noacl, nocleaner, discard and copy_below are raidfs's, not the kernel's";
}

TEST(MountOptionsTest, BadValuesNameTheOptionAndWhatItExpects) {
  for (const char* bad : {"threads=0", "threads=-4", "threads=x", "threads=", "uring_threads=99",
                          "uring_entries=0", "commit=-1", "commit=5s", "commit=999999",
                          "transport=tcp", "attr_timeout=-1", "attr_timeout=soon", "members=",
                          "members=/a::/b", "log=relative.log", "log=", "copy_below=1K",
                          "copy_below=2G", "copy_below=lots", "copy_below="}) {
    MountOptions o;
    auto r = o.parse(bad);
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().code, EINVAL) << bad;
    const std::string key = std::string(bad).substr(0, std::string(bad).find('='));
    EXPECT_NE(r.error().message.find(key), std::string::npos) << r.error().message;
  }
}

}  // namespace
}  // namespace raidfs::utils
