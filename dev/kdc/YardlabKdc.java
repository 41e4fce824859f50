// The local stack's KDC: Hadoop's MiniKdc (Apache Kerby) in a process of its own.
//
//   java -cp 'dev/hadoop/lib/*' dev/kdc/YardlabKdc.java WORKDIR PORT SPEC
//
// SPEC is a text file; each line is a keytab path followed by the principals that go into it
// ("/state/kdc/hadoop.keytab nn/localhost dn/localhost HTTP/localhost").  The KDC starts on
// 127.0.0.1:PORT (TCP), writes every keytab (mode 0600) and MiniKdc's krb5.conf, then writes
// WORKDIR/ready.json ({"realm", "port", "krb5conf"}) last, so that file's presence means ready.
// It runs until it is sent SIGTERM.
//
// Keys are derived from passwords kept in WORKDIR/passwords.properties (0600), made on the first
// start: a KDC stopped and started again is the same realm with the same keys (krbtgt included),
// so tickets and keytabs from before still work, as with a real KDC that was briefly down.
import java.io.File;
import java.io.InputStream;
import java.io.OutputStream;
import java.lang.reflect.Field;
import java.security.SecureRandom;
import java.util.Base64;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.Arrays;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import org.apache.hadoop.minikdc.MiniKdc;
import org.apache.kerby.kerberos.kerb.server.SimpleKdcServer;

public class YardlabKdc {
  private static final SecureRandom RANDOM = new SecureRandom();

  private static String password(Properties passwords, String principal) {
    String known = passwords.getProperty(principal);
    if (known != null) {
      return known;
    }
    byte[] bytes = new byte[24];
    RANDOM.nextBytes(bytes);
    String made = Base64.getEncoder().encodeToString(bytes);
    passwords.setProperty(principal, made);
    return made;
  }

  public static void main(String[] args) throws Exception {
    if (args.length != 3) {
      System.err.println("usage: YardlabKdc WORKDIR PORT SPEC");
      System.exit(2);
    }
    File work = new File(args[0]);
    work.mkdirs();
    Path ready = Paths.get(args[0], "ready.json");
    Files.deleteIfExists(ready);

    Properties conf = MiniKdc.createConf();
    conf.setProperty(MiniKdc.KDC_BIND_ADDRESS, "127.0.0.1");
    conf.setProperty(MiniKdc.KDC_PORT, args[1]);
    conf.setProperty(MiniKdc.TRANSPORT, "TCP");
    // tickets live for a day and renew for a week, as on a typical site
    conf.setProperty(MiniKdc.MAX_TICKET_LIFETIME, String.valueOf(24L * 3600 * 1000));
    conf.setProperty(MiniKdc.MAX_RENEWABLE_LIFETIME, String.valueOf(7L * 24 * 3600 * 1000));
    MiniKdc kdc = new MiniKdc(conf, work);
    kdc.start();

    Field field = MiniKdc.class.getDeclaredField("simpleKdc");
    field.setAccessible(true);
    SimpleKdcServer server = (SimpleKdcServer) field.get(kdc);
    String realm = kdc.getRealm();
    Path passwordsFile = Paths.get(args[0], "passwords.properties");
    Properties passwords = new Properties();
    if (Files.exists(passwordsFile)) {
      try (InputStream in = Files.newInputStream(passwordsFile)) {
        passwords.load(in);
      }
    }
    String tgs = "krbtgt/" + realm + "@" + realm;
    server.deletePrincipal(tgs);
    server.createPrincipal(tgs, password(passwords, tgs));

    List<String> lines = Files.readAllLines(Paths.get(args[2]), StandardCharsets.UTF_8);
    for (String line : lines) {
      String[] words = line.trim().split("\\s+");
      if (words.length < 2 || words[0].startsWith("#")) {
        continue;
      }
      File keytab = new File(words[0]);
      keytab.getParentFile().mkdirs();
      // written beside it and renamed into place: a daemon re-reading its keytab while the KDC
      // restarts never finds it missing or half-written, and it keeps the owner it was given
      Path target = keytab.toPath();
      Path fresh = target.resolveSibling("." + target.getFileName() + ".new");
      Files.deleteIfExists(fresh);
      for (String principal : Arrays.copyOfRange(words, 1, words.length)) {
        String full = principal + "@" + realm;
        server.createPrincipal(full, password(passwords, full));
        server.exportPrincipal(full, fresh.toFile());
      }
      Files.setPosixFilePermissions(fresh, PosixFilePermissions.fromString("rw-------"));
      if (Files.exists(target)) {
        Files.setOwner(fresh, Files.getOwner(target));
      }
      Files.move(fresh, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      System.out.println("keytab " + keytab + ": " + String.join(" ", Arrays.copyOfRange(words, 1, words.length)));
    }

    Path tmpPasswords = Paths.get(args[0], "passwords.properties.tmp");
    Files.deleteIfExists(tmpPasswords);
    Files.createFile(tmpPasswords, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
    try (OutputStream out = Files.newOutputStream(tmpPasswords)) {
      passwords.store(out, "yardlab local KDC: principal passwords (keys derive from them)");
    }
    Files.move(tmpPasswords, passwordsFile, StandardCopyOption.ATOMIC_MOVE);

    String json = String.format("{\"realm\": \"%s\", \"port\": %d, \"krb5conf\": \"%s\"}%n",
        kdc.getRealm(), kdc.getPort(), kdc.getKrb5conf().getAbsolutePath());
    Path tmp = Paths.get(args[0], "ready.json.tmp");
    Files.write(tmp, json.getBytes(StandardCharsets.UTF_8));
    Files.move(tmp, ready, StandardCopyOption.ATOMIC_MOVE);
    System.out.println("KDC ready: " + json.trim());

    CountDownLatch stop = new CountDownLatch(1);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      kdc.stop();
      try {
        Files.deleteIfExists(ready);
      } catch (Exception ignored) {
        // the launcher removes the folder anyway
      }
      stop.countDown();
    }));
    stop.await();
  }
}
